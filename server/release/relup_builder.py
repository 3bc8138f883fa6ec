"""Deriving a relup from appups: OTP's ``systools:make_relup`` and ``systools_rc``, as data.

How this works (a pure core: no I/O, no event loop):

1. For each older release named ``up_from`` the builder gathers one script per application:
   ``add_application`` for applications only in the newer release (these go first), the
   newer application version's appup ``up`` entry for applications whose version changed,
   ``remove_application`` for applications only in the older release (these go last). The
   ``down_to`` releases get the same with the newer versions' appup ``down`` entries and the
   roles swapped. Both directions live in the newer release's relup.
   An appup may write ``add_application`` / ``remove_application`` itself: each is merged
   with the derived one (one add or remove per application; an explicit start type wins),
   and one the diff contradicts (adding an application both releases have) is refused.
2. Application instructions are lowered: ``add_application`` becomes an ``add_module`` per
   module of the new version plus an ``apply`` that starts it; ``remove_application`` stops
   it, removes and purges its modules and unloads it; ``restart_application`` does both.
3. ``update``, ``load_module``, ``add_module`` and ``delete_module`` form a dependency graph
   (``dep_mods``). Each weakly connected component is emitted as one block where its first
   instruction stood, modules ordered "dependents first" (cycles keep appup order):

   ====  =========================================  ==========================================
   step  up                                         down
   ====  =========================================  ==========================================
   1     suspend (updates, dependents first)        suspend (same order)
   2     loads and removes, dependencies first      code_change down, dynamic advanced updates
   3     code_change up, every advanced update      loads and removes, dependents first
   4     resume, reverse order                      code_change down, static advanced updates
   5                                                resume, reverse order
   ====  =========================================  ==========================================

4. Every loaded module's ``load_object_code`` moves before the ``point_of_no_return``, merged
   per application, so the new code is read and checked before anything changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from server.errors import BuildError
from server.spec.appup import (
    AddApplication,
    AddModule,
    Apply,
    DeleteModule,
    LoadModule,
    RemoveApplication,
    RestartApplication,
    Update,
)
from server.spec.relup import (
    ApplyCall,
    CodeChange,
    CodeChangeModule,
    LoadObjectCode,
    ModuleLoad,
    ModuleRemove,
    PointOfNoReturn,
    PurgeModules,
    Relup,
    RelupEntry,
    RestartNewEmulator,
    ResumeModules,
    SuspendModule,
    SuspendModules,
)
from server.spec.requirements import requirements_change

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from server.spec.appup import HighInstruction
    from server.spec.release_view import ReleaseView
    from server.spec.relup import LowInstruction

__all__ = ["APPLICATION_API", "make_relup", "translate"]

#: The module whose functions the lowered application instructions ``apply``.
APPLICATION_API = "server.app"

_ModuleStep = LoadModule | Update | DeleteModule


def make_relup(
    top: ReleaseView, up_from: Sequence[ReleaseView], down_to: Sequence[ReleaseView]
) -> Relup:
    """The relup of ``top``: how to come from each ``up_from`` and go back to each ``down_to``.

    Raises:
        BuildError: an appup has no entry for a needed version, or the instructions are
            inconsistent (a module twice, an unknown dependency); every problem is listed.
    """
    problems: list[str] = []
    up: list[RelupEntry] = []
    down: list[RelupEntry] = []
    for base in up_from:
        if _requirements_differ(top, base):
            up.append(_entry(base, [RestartNewEmulator(op="restart_new_emulator")]))
            continue
        script = _gather(top, base, "up", problems)
        if script is not None:
            up.append(_entry(base, translate(script, "up", top, base, problems)))
    for base in down_to:
        if _requirements_differ(top, base):
            down.append(_entry(base, [RestartNewEmulator(op="restart_new_emulator")]))
            continue
        script = _gather(top, base, "down", problems)
        if script is not None:
            down.append(_entry(base, translate(script, "down", base, top, problems)))
    if problems:
        raise BuildError(f"the relup of release {top.spec.name} {top.spec.vsn}", problems)
    return Relup(vsn=top.spec.vsn, up=up, down=down)


def _requirements_differ(top: ReleaseView, base: ReleaseView) -> bool:
    """Whether the two releases need other Python distributions (then: restart_new_emulator)."""
    added, removed = requirements_change(
        [t for spec in base.apps.values() for t in spec.requires],
        [t for spec in top.apps.values() for t in spec.requires],
    )
    return bool(added or removed)


def _entry(base: ReleaseView, instructions: list[LowInstruction]) -> RelupEntry:
    return RelupEntry(
        vsn=base.spec.vsn,
        description=f"{base.spec.name} {base.spec.vsn}",
        instructions=instructions,
    )


def _gather(
    top: ReleaseView, base: ReleaseView, mode: str, problems: list[str]
) -> list[HighInstruction] | None:
    """The merged appup script moving between ``top`` and ``base`` (adds first, removes last)."""
    top_names = [entry.name for entry in top.spec.applications]
    base_names = [entry.name for entry in base.spec.applications]
    # the release being moved to and the one being left
    target = top if mode == "up" else base
    target_names = top_names if mode == "up" else base_names
    source_names = base_names if mode == "up" else top_names
    adds: list[HighInstruction] = []
    for name in target_names:
        if name not in source_names:
            entry = target.spec.app(name)
            assert entry is not None
            adds.append(AddApplication(op="add_application", application=name, type=entry.type))
    changes: list[HighInstruction] = []
    failed = False
    for name in top_names:
        if name not in base_names:
            continue
        new, old = top.app(name), base.app(name)
        if new.vsn == old.vsn:
            continue
        found = new.appup.up_from(old.vsn) if mode == "up" else new.appup.down_to(old.vsn)
        if found is None:
            where = "up" if mode == "up" else "down"
            problems.append(
                f"application {name} {new.vsn}: its appup has no {where} entry for "
                f"{old.vsn} (add [[appup.{where}]] vsn = {old.vsn!r} to its spec)"
            )
            failed = True
            continue
        changes.extend(found.instructions)
    removes: list[HighInstruction] = [
        RemoveApplication(op="remove_application", application=name)
        for name in source_names
        if name not in target_names
    ]
    changes = _merge_explicit(changes, adds, removes, source_names, problems)
    return None if failed else [*adds, *changes, *removes]


def _merge_explicit(
    changes: list[HighInstruction],
    adds: list[HighInstruction],
    removes: list[HighInstruction],
    source_names: Sequence[str],
    problems: list[str],
) -> list[HighInstruction]:
    """Fold explicit ``add_application`` / ``remove_application`` into the derived ones.

    Each application is added or removed once, where the derived instruction stands (an
    explicit start type wins); an explicit add the release diff contradicts is refused.
    """
    derived_adds = {i.application: n for n, i in enumerate(adds) if isinstance(i, AddApplication)}
    derived_removes = {i.application for i in removes if isinstance(i, RemoveApplication)}
    kept: list[HighInstruction] = []
    for instruction in changes:
        if isinstance(instruction, AddApplication):
            name = instruction.application
            if name in derived_adds:
                adds[derived_adds[name]] = instruction  # its own start type, added first
            elif name in source_names:
                problems.append(
                    f"add_application {name}: {name} is in the release being left too "
                    "(restart_application restarts it; an add is derived for a new one)"
                )
            else:
                kept.append(instruction)  # in neither: refused when lowered
            continue
        if isinstance(instruction, RemoveApplication) and instruction.application in (
            derived_removes
        ):
            continue  # derived already, last
        kept.append(instruction)
    return kept


def translate(
    script: Sequence[HighInstruction],
    mode: str,
    target: ReleaseView,
    source: ReleaseView,
    problems: list[str],
) -> list[LowInstruction]:
    """Lower a merged appup script to relup instructions (``mode`` is ``up`` or ``down``).

    ``target`` is the release being moved to, ``source`` the one being left. Problems are
    appended to ``problems``; the returned script is meaningful only when none were added.
    """
    steps = _lower_applications(script, target, source, problems)
    graph = _Graph(steps, problems)
    after: list[LowInstruction] = []
    loaded: list[str] = []  # OTP lists object code in emission order, dependents first
    emitted: set[int] = set()
    for step in steps:
        if isinstance(step, _ModuleStep):
            component = graph.component_of(step.module)
            if component not in emitted:
                emitted.add(component)
                ordered = graph.order(component)
                loaded.extend(s.module for s in ordered if not isinstance(s, DeleteModule))
                after.extend(_block(ordered, mode))
        else:
            if isinstance(step, ModuleLoad):
                loaded.append(step.module)
            after.append(step)
    point = PointOfNoReturn(op="point_of_no_return")
    return [*_object_code(loaded, target, problems), point, *after]


def _lower_applications(
    script: Sequence[HighInstruction],
    target: ReleaseView,
    source: ReleaseView,
    problems: list[str],
) -> list[_ModuleStep | LowInstruction]:
    steps: list[_ModuleStep | LowInstruction] = []
    for instruction in script:
        match instruction:
            case AddApplication(application=name, type=start_type):
                if name not in target.apps:
                    problems.append(f"add_application {name}: not in the target release")
                    continue
                steps.extend(
                    LoadModule(op="load_module", module=m) for m in target.app(name).modules
                )
                steps.extend(_start_steps(name, start_type))
            case RemoveApplication(application=name):
                if name in target.apps:
                    problems.append(f"remove_application {name}: it is still in the target release")
                    continue
                steps.extend(_stop_steps(name, source.app(name).modules))
                steps.append(_apply("unload_application", name))
            case RestartApplication(application=name):
                if name not in target.apps or name not in source.apps:
                    problems.append(f"restart_application {name}: not in both releases")
                    continue
                steps.extend(_stop_steps(name, source.app(name).modules))
                steps.extend(ModuleLoad(op="load", module=m) for m in target.app(name).modules)
                entry = target.spec.app(name)
                steps.extend(_start_steps(name, entry.type if entry else "permanent"))
            case AddModule(module=module, dep_mods=deps):
                steps.append(LoadModule(op="load_module", module=module, dep_mods=deps))
            case Apply(module=module, function=function, args=args):
                steps.append(ApplyCall(op="apply", module=module, function=function, args=args))
            case LoadModule() | Update() | DeleteModule():
                steps.append(instruction)
    return steps


def _apply(function: str, *args: str) -> ApplyCall:
    return ApplyCall(op="apply", module=APPLICATION_API, function=function, args=list(args))


def _start_steps(name: str, start_type: str) -> list[LowInstruction]:
    if start_type == "none":
        return []
    if start_type == "load":
        return [_apply("load_application", name)]
    return [_apply("start_application", name, start_type)]


def _stop_steps(name: str, modules: Sequence[str]) -> list[LowInstruction]:
    steps: list[LowInstruction] = [_apply("stop_application", name)]
    steps.extend(ModuleRemove(op="remove", module=m) for m in modules)
    if modules:
        steps.append(PurgeModules(op="purge", modules=list(modules)))
    return steps


class _Graph:
    """The ``dep_mods`` graph over module instructions: components, and order inside one."""

    def __init__(self, steps: Sequence[object], problems: list[str]) -> None:
        self.steps: dict[str, _ModuleStep] = {}
        for step in steps:
            if isinstance(step, _ModuleStep):
                if step.module in self.steps:
                    problems.append(f"module {step.module}: more than one instruction (muldef)")
                    continue
                self.steps[step.module] = step
        self.position = {module: index for index, module in enumerate(self.steps)}
        self.parent = {module: module for module in self.steps}
        for module, step in self.steps.items():
            for dep in step.dep_mods:
                if dep not in self.steps:
                    problems.append(
                        f"module {module}: dependency {dep} has no instruction in this relup"
                    )
                    continue
                self._union(module, dep)

    def _find(self, module: str) -> str:
        while self.parent[module] != module:
            self.parent[module] = self.parent[self.parent[module]]
            module = self.parent[module]
        return module

    def _union(self, a: str, b: str) -> None:
        self.parent[self._find(a)] = self._find(b)

    def component_of(self, module: str) -> int:
        """A number naming the weakly connected component of ``module``."""
        return self.position[self._find(module)]

    def order(self, component: int) -> list[_ModuleStep]:
        """The component's instructions, dependents first (a cycle keeps appup order)."""
        members = [m for m in self.steps if self.component_of(m) == component]
        deps = {m: [d for d in self.steps[m].dep_mods if d in self.steps] for m in members}
        groups = _strongly_connected(members, deps)
        group_of = {m: i for i, group in enumerate(groups) for m in group}
        incoming = dict.fromkeys(range(len(groups)), 0)
        edges: dict[int, set[int]] = {i: set() for i in range(len(groups))}
        for m in members:
            for d in deps[m]:
                a, b = group_of[m], group_of[d]
                if a != b and b not in edges[a]:
                    edges[a].add(b)
                    incoming[b] += 1
        first = {i: min(self.position[m] for m in group) for i, group in enumerate(groups)}
        ready = sorted((i for i in incoming if incoming[i] == 0), key=first.__getitem__)
        ordered: list[_ModuleStep] = []
        while ready:
            current = ready.pop(0)
            group = sorted(groups[current], key=self.position.__getitem__)
            ordered.extend(self.steps[m] for m in group)
            for nxt in edges[current]:
                incoming[nxt] -= 1
                if incoming[nxt] == 0:
                    ready.append(nxt)
            ready.sort(key=first.__getitem__)
        return ordered


def _strongly_connected(members: list[str], deps: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (module graphs can be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = 0
    for root in members:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            recurse = False
            for i in range(child, len(deps[node])):
                nxt = deps[node][i]
                if nxt not in index:
                    work.append((node, i + 1))
                    work.append((nxt, 0))
                    recurse = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if recurse:
                continue
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    group.append(top)
                    if top == node:
                        break
                groups.append(group)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return groups


def _block(ordered: list[_ModuleStep], mode: str) -> list[LowInstruction]:
    updates = [step for step in ordered if isinstance(step, Update)]
    advanced = [step for step in updates if step.advanced]
    block: list[LowInstruction] = []
    if updates:
        block.append(
            SuspendModules(
                op="suspend",
                modules=[SuspendModule(module=s.module, timeout=s.timeout) for s in updates],
            )
        )
    if mode == "up":
        block.extend(_loads(reversed(ordered)))
        block.extend(_code_change("up", advanced))
    else:
        block.extend(
            _code_change("down", [s for s in advanced if s.effective_mod_type == "dynamic"])
        )
        block.extend(_loads(ordered))
        block.extend(
            _code_change("down", [s for s in advanced if s.effective_mod_type == "static"])
        )
    if updates:
        block.append(ResumeModules(op="resume", modules=[s.module for s in reversed(updates)]))
    return block


def _loads(steps: Iterable[_ModuleStep]) -> list[LowInstruction]:
    out: list[LowInstruction] = []
    for step in steps:
        if isinstance(step, DeleteModule):
            out.append(ModuleRemove(op="remove", module=step.module))
            out.append(PurgeModules(op="purge", modules=[step.module]))
        else:
            out.append(
                ModuleLoad(
                    op="load",
                    module=step.module,
                    pre_purge=step.pre_purge,
                    post_purge=step.post_purge,
                )
            )
    return out


def _code_change(mode: str, steps: Sequence[Update]) -> list[LowInstruction]:
    if not steps:
        return []
    return [
        CodeChange(
            op="code_change",
            mode="up" if mode == "up" else "down",
            modules=[CodeChangeModule(module=s.module, extra=s.extra) for s in steps],
        )
    ]


def _object_code(
    loaded: Sequence[str], target: ReleaseView, problems: list[str]
) -> list[LowInstruction]:
    """One ``load_object_code`` per application, for every module the script loads."""
    per_app: dict[str, list[str]] = {}
    for module in loaded:
        owner = target.owner_of(module)
        if owner is None:
            problems.append(
                f"module {module}: loaded, but no application of release "
                f"{target.spec.vsn} lists it in its modules"
            )
            continue
        modules = per_app.setdefault(owner.name, [])
        if module not in modules:
            modules.append(module)
    return [
        LoadObjectCode(
            op="load_object_code", application=name, vsn=target.app(name).vsn, modules=modules
        )
        for name, modules in per_app.items()
    ]
