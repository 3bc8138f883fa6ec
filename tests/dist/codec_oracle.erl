%% The oracle of the codec's property tests: erts itself, talking {packet,4} over stdio.
%%
%% Requests (each a packet whose first byte is the operation):
%%   <<1, Bin/binary>>    binary_to_term(Bin), then term_to_binary(T, [{minor_version,2}])
%%   <<2, Seed:32>>       a random term made from Seed, as term_to_binary(T, [{minor_version,2}])
%%   <<3, Bin/binary>>    Bin is a list of distinct terms: the list in exact term order
%%                        (the order of the keys of a small map)
%% Replies: <<0, Result/binary>> or <<1, Why/binary>>. The node halts at end of input.
%%
%% fixtures/0 prints the byte fixtures of test_etf.py (see fixtures/erts_otp25.py).
-module(codec_oracle).
-export([main/0, fixtures/0]).

main() ->
    Port = open_port({fd, 0, 1}, [{packet, 4}, binary, eof]),
    loop(Port).

loop(Port) ->
    receive
        {Port, {data, Request}} ->
            Reply = try {0, handle(Request)}
                    catch Class:Reason -> {1, iolist_to_binary(io_lib:format("~p:~p", [Class, Reason]))}
                    end,
            {Status, Body} = Reply,
            Port ! {self(), {command, <<Status, Body/binary>>}},
            loop(Port);
        {Port, eof} ->
            halt(0)
    end.

handle(<<1, Bin/binary>>) ->
    term_to_binary(binary_to_term(Bin), [{minor_version, 2}]);
handle(<<2, Seed:32>>) ->
    rand:seed(exsss, {Seed + 1, Seed * 7 + 3, 42}),
    Term = case Seed rem 50 of
               0 -> [lists:duplicate(70000, 1), lists:duplicate(65535, 255), list_to_tuple(lists:seq(1, 300))];
               _ -> gen(3)
           end,
    term_to_binary(Term, [{minor_version, 2}]);
handle(<<3, Bin/binary>>) ->
    Keys = binary_to_term(Bin),
    term_to_binary(maps:keys(maps:from_list([{K, 0} || K <- Keys])), [{minor_version, 2}]).

pick(List) -> lists:nth(rand:uniform(length(List)), List).

gen(Depth) when Depth =< 0 -> scalar();
gen(Depth) ->
    case rand:uniform(12) of
        1 -> list_to_tuple([gen(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        2 -> [gen(Depth - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)];
        3 -> improper(Depth);
        4 -> small_map(Depth);
        5 -> big_map(Depth);
        6 -> #{1 => gen(Depth - 1), 1.0 => gen(Depth - 1)};
        7 -> closure(gen(Depth - 1));
        8 -> list_to_tuple([rand:uniform(300) || _ <- lists:seq(1, 256 + rand:uniform(60))]);
        _ -> scalar()
    end.

improper(Depth) ->
    Items = [gen(Depth - 1) || _ <- lists:seq(1, rand:uniform(3))],
    Items ++ pick([a, 7, make_ref(), <<"t">>, {x}]).

key() ->
    case rand:uniform(8) of
        1 -> {scalar(), scalar()};
        2 -> [scalar()];
        _ -> scalar()
    end.

small_map(Depth) ->
    maps:from_list([{key(), gen(Depth - 1)} || _ <- lists:seq(1, rand:uniform(6) - 1)]).

big_map(_Depth) ->
    maps:from_list([{N, scalar()} || N <- lists:seq(1, 33 + rand:uniform(10))] ++
                   [{key(), x} || _ <- lists:seq(1, 3)]).

closure(Captured) ->
    case rand:uniform(4) of
        1 -> fun(X) -> {X, Captured} end;
        2 -> fun(X, Y) -> [X, Y | Captured] end;
        3 -> fun lists:map/2;
        4 -> fun local_fun/1
    end.

local_fun(X) -> X.

scalar() ->
    case rand:uniform(22) of
        1 -> rand:uniform(256) - 1;
        2 -> rand:uniform(1 bsl 32) - (1 bsl 31) - 1;
        3 -> pick([0, 255, 256, -1, -(1 bsl 31), (1 bsl 31) - 1, 1 bsl 31, -(1 bsl 31) - 1,
                   1 bsl 64, -(1 bsl 64), (1 bsl 2040) - 1, 1 bsl 2040]);
        4 -> Bits = rand:uniform(3000), (rand:uniform(1 bsl Bits)) * pick([1, -1]);
        5 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300);
        6 -> pick([0.0, -0.0, 1.0, 1.5, 1.0e300, -2.5e-300]);
        7 -> pick([a, ok, true, false, undefined, '', 'hello world', 'ünïcødé', '😀😀',
                   list_to_atom(lists:duplicate(255, $a)),
                   list_to_atom(lists:duplicate(255, 16#1F600))]);
        8 -> crypto_bytes(rand:uniform(20) - 1);
        9 -> unicode:characters_to_binary(pick(["", "key", "héllo", "日本語", "😀"]));
        10 -> <<(crypto_bytes(rand:uniform(4)))/binary, (rand:uniform(128) - 1):(rand:uniform(7))>>;
        11 -> [rand:uniform(256) - 1 || _ <- lists:seq(1, rand:uniform(10))];
        12 -> pick([[], {}, #{}, <<>>]);
        13 -> self();
        14 -> remote_pid();
        15 -> make_ref();
        16 -> remote_ref();
        17 -> hd(erlang:ports());
        18 -> remote_port();
        19 -> fun erlang:abs/1;
        20 -> alias();
        21 -> [1, 2 | <<3:2>>];
        22 -> pick([1 bsl 27, 1 bsl 28]) + rand:uniform(100)
    end.

crypto_bytes(N) -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, N)]).

node_atom() ->
    N = atom_to_binary(pick(['a@b', 'py@host', 'erl@vm', 'n😀@h'])),
    <<119, (byte_size(N)), N/binary>>.

remote_pid() ->
    binary_to_term(<<131, 88, (node_atom())/binary, (rand:uniform(1 bsl 32) - 1):32,
                     (rand:uniform(1 bsl 32) - 1):32, (rand:uniform(1 bsl 32) - 1):32>>).

remote_ref() ->
    N = rand:uniform(5),
    Words = << <<(rand:uniform(1 bsl 32) - 1):32>> || _ <- lists:seq(1, N) >>,
    binary_to_term(<<131, 90, N:16, (node_atom())/binary, (rand:uniform(1 bsl 32) - 1):32,
                     Words/binary>>).

remote_port() ->
    case rand:uniform(2) of
        1 -> binary_to_term(<<131, 89, (node_atom())/binary, (rand:uniform(1 bsl 28) - 1):32,
                              (rand:uniform(1 bsl 32) - 1):32>>);
        2 -> binary_to_term(<<131, 120, (node_atom())/binary, (rand:uniform(1 bsl 64) - 1):64,
                              (rand:uniform(1 bsl 32) - 1):32>>)
    end.

%% One line per fixture: Name = bytes literal, in Python syntax.
fixtures() ->
    Pid = binary_to_term(<<131, 88, 119, 3, "a@b", 1:32, 2:32, 3:32>>),
    Ref = binary_to_term(<<131, 90, 3:16, 119, 3, "a@b", 7:32, 1:32, 2:32, 3:32>>),
    Terms = [
        {small_int, 42}, {int_255, 255}, {int_256, 256}, {int_minus_1, -1},
        {int_max32, (1 bsl 31) - 1}, {int_min32, -(1 bsl 31)}, {big_2_31, 1 bsl 31},
        {big_min32_minus_1, -(1 bsl 31) - 1}, {big_2_64, 1 bsl 64}, {big_neg_2_64, -(1 bsl 64)},
        {large_big, 1 bsl 2100}, {float, 1.5}, {neg_zero, -0.0},
        {atom, ok}, {atom_true, true}, {atom_undefined, undefined}, {atom_empty, ''},
        {atom_emoji, '😀'}, {atom_255, list_to_atom(lists:duplicate(255, $x))},
        {atom_long_utf8, list_to_atom(lists:duplicate(100, 16#1F600))},
        {binary, <<"key">>}, {binary_latin1, <<255, 0>>}, {binary_empty, <<>>},
        {bits, <<5:3>>}, {bits_long, <<1, 2, 3:5>>},
        {nil, []}, {string, "abc"}, {list, [1, a, <<"b">>]}, {list_big, [1000]},
        {improper, [a | b]}, {alias_tag, [alias | Ref]},
        {tuple_empty, {}}, {tuple, {a, 1}}, {large_tuple, list_to_tuple(lists:seq(1, 256))},
        {map_empty, #{}}, {map, #{b => 1, a => 2, 1 => x, <<"k">> => y}},
        {map_collision, #{1 => a, 1.0 => b}}, {map_list_key, #{[1] => a}},
        {pid, Pid}, {ref, Ref},
        {port, binary_to_term(<<131, 89, 119, 3, "a@b", 5:32, 6:32>>)},
        {port_v4, binary_to_term(<<131, 120, 119, 3, "a@b", (1 bsl 40):64, 6:32>>)},
        {export, fun lists:map/2},
        {gen_call, {'$gen_call', {Pid, [alias | Ref]}, {incr, <<"key">>}}},
        {local_fun, fun local_fun/1},
        {closure, fun(X) -> {X, Pid, <<"free">>} end}
    ],
    [io:format("    \"~s\": ~s,~n", [Name, py_bytes(term_to_binary(T, [{minor_version, 2}]))])
     || {Name, T} <- Terms],
    ok.

py_bytes(Bin) ->
    ["b\"", [io_lib:format("\\x~2.16.0b", [B]) || <<B>> <= Bin], "\""].
