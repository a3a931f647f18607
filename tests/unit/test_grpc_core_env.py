"""The daemon's environment for grpc's C core (cri/grpc_core_env.py): the
defaults, an operator's own values kept, and the experiment names still known
to the installed grpcio, checked by a real grpc.aio server in a child process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dockyard.cri import grpc_core_env

FORK = "GRPC_ENABLE_FORK_SUPPORT"
EXPERIMENTS = "GRPC_EXPERIMENTS"


@pytest.mark.parametrize(("given", "expected"), [
    ({}, {FORK: "0", EXPERIMENTS: grpc_core_env.EXPERIMENTS}),
    ({FORK: "1"}, {FORK: "1", EXPERIMENTS: grpc_core_env.EXPERIMENTS}),
    ({EXPERIMENTS: ""}, {FORK: "0", EXPERIMENTS: ""}),
    ({EXPERIMENTS: "event_engine_listener", "PATH": "/bin"},
     {FORK: "0", EXPERIMENTS: "event_engine_listener", "PATH": "/bin"}),
])
def test_apply_sets_only_what_the_operator_left_unset(given: dict[str, str], expected: dict[str, str]) -> None:
    environ = dict(given)
    grpc_core_env.apply(environ)
    assert environ == expected


# One unary call into a grpc.aio server on a unix socket: enough to start the
# core's pollers, which is when it reads GRPC_EXPERIMENTS.
_ONE_CALL = textwrap.dedent("""
    import asyncio, sys
    import grpc
    async def main(path):
        server = grpc.aio.server()
        server.add_insecure_port("unix://" + path)
        await server.start()
        async with grpc.aio.insecure_channel("unix://" + path) as channel:
            try:
                await channel.unary_unary("/dockyard.Test/Nothing")(b"", timeout=10)
            except grpc.aio.AioRpcError as err:
                print(err.code().name)
        await server.stop(0)
    asyncio.run(main(sys.argv[1]))
""")


def _one_call(tmp_path: Path, experiments: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", FORK: "0", EXPERIMENTS: experiments}
    return subprocess.run([sys.executable, "-c", _ONE_CALL, str(tmp_path / "g.sock")],
                          env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("experiments", "known"), [
    (grpc_core_env.EXPERIMENTS, True),
    # The check itself: a name grpc lacks is reported on stderr.
    ("-event_engine_listener,-dockyard_no_such_experiment", False),
])
def test_the_experiment_names_are_known_to_grpc(tmp_path: Path, experiments: str, known: bool) -> None:
    done = _one_call(tmp_path, experiments)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "UNIMPLEMENTED"
    assert ("Unknown experiment" not in done.stderr) is known, done.stderr
