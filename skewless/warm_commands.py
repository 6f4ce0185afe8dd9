"""`run_command` without paying each command's start: a child process imports the `skewless`
app and the libraries its commands use once, then forks a fresh process per command.

A command's start is mostly imports (Feast ~2 s, MLflow ~1 s, LightGBM and pandas, the app's
rooms), paid again by every step of a deploy: 2-5 s of a 3-8 s step. The forked process starts
from a parent that has only imported (one thread, no connection, no file open), so it is what a
fresh `skewless` process would be, minus the imports: its own memory, its settings read from the
environment it is given, its output to ours, its crash its own. This is how servers preload
applications (gunicorn's `--preload`, Ray's workers).

The parent (a `WarmCommands` context) sends each command as one JSON line on a pipe; the
preloaded process forks, waits for the command's process, and answers its exit code. Closing
the pipe (the parent's exit or crash included) ends the preloaded process.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
from types import ModuleType, TracebackType

from skewless.command_support import command_module
from skewless.settings import get_settings


class WarmCommands:
    """A context whose `run(*args, env=...)` has `run_command`'s shape and meaning."""

    def __init__(self, preload: tuple[str, ...] = ()) -> None:
        self.preload = preload
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WarmCommands:
        module = command_module()  # before any descriptor is opened: it may refuse
        requests_read, self._requests = os.pipe()
        self._replies, replies_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(requests_read), str(replies_write)]
                + [module, *self.preload],
                pass_fds=(requests_read, replies_write),
            )
        except BaseException:
            for fd in (requests_read, self._requests, self._replies, replies_write):
                os.close(fd)
            raise
        os.close(requests_read)
        os.close(replies_write)
        self._writer = os.fdopen(self._requests, "w")
        self._reader = os.fdopen(self._replies)
        return self

    def run(self, *args: str, env: dict[str, str] | None = None) -> int:
        """One command in a process of its own, with `env` added to ours; its exit code."""
        request = {"args": list(args), "env": {**os.environ, **(env or {})}}
        try:
            self._writer.write(json.dumps(request) + "\n")
            self._writer.flush()
            reply = self._reader.readline()
        except BrokenPipeError:
            reply = ""
        if not reply:  # the preloaded process died: a failed command, said as one
            print(f"failed: the process running `{' '.join(args)}` ended", file=sys.stderr)
            return 1
        code: int = json.loads(reply)["code"]
        return code

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is not None and self.process is not None and self.process.poll() is None:
            # Interrupted while a command may run: the preloaded process stops it (SIGTERM,
            # as `subprocess.run` would have it stopped), waits for it, and ends.
            self.process.terminate()
        with contextlib.suppress(BrokenPipeError):
            self._writer.close()  # its end of file: the preloaded process exits
        self._reader.close()
        if self.process is not None:
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _serve(requests_fd: int, replies_fd: int, module: str, preload: list[str]) -> None:
    # Ctrl-C at the terminal reaches the whole process group: the command running handles it
    # (its default handler is restored after the fork); this process waits for it and answers.
    # A SIGTERM (the caller interrupted) is passed on to the command running, then ends us.
    running: list[int] = []

    def _stop(signum: int, _frame: object) -> None:
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in running:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        os._exit(128 + signum)

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    app = importlib.import_module(module)
    for name in preload:
        importlib.import_module(name)
    with os.fdopen(requests_fd) as requests:
        for line in requests:
            request = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                requests.close()
                os.close(replies_fd)
                _exit(_command(app, request["args"], request["env"]))
            running.append(pid)
            _, status = os.waitpid(pid, 0)
            running.remove(pid)
            reply = json.dumps({"code": os.waitstatus_to_exitcode(status)}) + "\n"
            try:
                os.write(replies_fd, reply.encode())  # one short line: written whole
            except BrokenPipeError:  # the caller is gone (interrupted): so are we
                return


def _exit(code: int) -> None:
    """End the forked command as an interpreter ends: its exit handlers (logging's flush,
    libraries' clean-up), then the process, without returning into the loop above."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _command(app: ModuleType, args: list[str], env: dict[str, str]) -> int:
    """In the forked process: the command as `python -m <module> args` would run it."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()  # read from this command's environment, as at a fresh start
    # As `python -m <module>` sets them (click names the program from both).
    sys.modules["__main__"] = app
    sys.argv = [str(getattr(app, "__file__", "skewless")), *args]
    code: int = 1
    try:
        app.main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # what an uncaught exception would print, then its exit status
        import traceback

        traceback.print_exc()
    return code


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:])
