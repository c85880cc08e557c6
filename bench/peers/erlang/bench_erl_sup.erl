%% W6: one_for_one supervisor with one permanent gen_server child.
-module(bench_erl_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).

start_link() -> supervisor:start_link(?MODULE, []).

init([]) ->
    %% a batch of the benchmark restarts the child 100 times in well under 1 s
    SupFlags = #{strategy => one_for_one, intensity => 1000, period => 1},
    Child = #{id => child, start => {bench_erl_child, start_link, []},
              restart => permanent, shutdown => brutal_kill, type => worker},
    {ok, {SupFlags, [Child]}}.
