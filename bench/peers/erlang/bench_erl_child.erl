%% W6: the supervised gen_server; answers ping with pong.
-module(bench_erl_child).
-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2]).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

init([]) -> {ok, 0}.

handle_call(ping, _From, N) -> {reply, pong, N + 1}.

handle_cast(_Msg, N) -> {noreply, N}.
