"""The ``server`` command line is built from the node's one command table."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from server.cli._parser import parser
from server.kernel import Node, self
from server.node import COMMANDS, node_commands


def sub_commands() -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return dict(actions[0].choices)


def test_every_command_of_the_table_is_a_sub_command_and_nothing_else() -> None:
    typed = {name.replace("_", "-") for name in COMMANDS}  # reload_config: reload-config
    assert set(sub_commands()) == {"run", "build", "new", "keygen", "dev", "start", *typed}


async def test_the_node_serves_exactly_the_commands_of_the_table() -> None:
    async with Node(name="table") as node:

        async def main() -> object:
            return sorted(node_commands(self()))

        assert await node.run_process(main) == sorted(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_sub_command_takes_what_its_row_says(name: str) -> None:
    command = COMMANDS[name]
    typed = name.replace("_", "-")
    argv = [typed] if command.argument is None else [typed, "x"]
    args = parser().parse_args([*argv, "--root", "/tmp/r"])
    assert args.command == name
    assert args.root == Path("/tmp/r")
    if command.argument is not None:
        assert getattr(args, command.argument) == "x"
    assert parser().parse_args([*argv, "--json"]).json is True  # every command, for scripts


@pytest.mark.parametrize("name", sorted(n for n, c in COMMANDS.items() if c.argument is not None))
def test_a_command_without_its_argument_is_refused(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as refused:
        parser().parse_args([name])
    assert refused.value.code == 2
    assert f"the following arguments are required: {COMMANDS[name].argument}" in (
        capsys.readouterr().err
    )
