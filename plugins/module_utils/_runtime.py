# Copyright: Contributors to the Berth project
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host runtime (`berth`) as the modules see it: where it is, how to call it, what it said.

Private to this collection. Standard library only, because it runs on the managed host.
Every failure is raised as a `BerthError`; `_module.run` alone turns them into `fail_json`.
"""

from __future__ import annotations

import json
import os

# The version of `berth ... --json` this collection speaks; see runtime/berth/version.py.
PROTOCOL = 1
HOST_ROLE = "berth.fleet.host"
EXECUTABLE = "berth"
FALLBACK_LOCATIONS = ("/usr/local/bin/berth", "/opt/berth/bin/berth")

# argparse exits 2 with a usage message and no JSON when it does not know a command or flag.
_USAGE_ERROR_RC = 2
_STDERR_TAIL_LINES = 20


class BerthError(Exception):
    """A failure the modules report; `kind` types it for `failed_when` and for people.

    `actions` and `changed` carry what the runtime had already applied before it failed, so a
    partial change is never reported as no change.
    """

    kind = "error"

    def __init__(self, message, details=None, actions=None, changed=False, **extra):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.actions = actions or []
        self.changed = changed
        self.extra = extra

    def to_result(self):
        """The keyword arguments for `fail_json`."""
        result = dict(self.extra)
        result.update(
            msg=self.message,
            changed=self.changed,
            actions=self.actions,
            error={"kind": self.kind, "details": self.details},
        )
        return result


class RuntimeMissing(BerthError):
    kind = "runtime-missing"


class ProtocolMismatch(BerthError):
    kind = "protocol-mismatch"


class BadResponse(BerthError):
    """The runtime did not answer with a JSON envelope of the expected shape."""

    kind = "bad-response"


class InvalidOption(BerthError):
    """A module option that the argument spec cannot check by itself is wrong."""

    kind = "invalid-option"


class RuntimeFailed(BerthError):
    """The runtime answered `ok: false`; `kind` is the runtime's own error kind."""

    def __init__(self, kind, message, **kwargs):
        super().__init__(message, **kwargs)
        self.kind = kind


class Response:
    """A successful envelope: what changed, how, and the command's payload (`data`)."""

    def __init__(self, envelope):
        self.command = envelope.get("command")
        self.runtime = envelope.get("runtime")
        self.changed = bool(envelope.get("changed", False))
        self.actions = list(envelope.get("actions") or [])
        self.warnings = [str(w) for w in envelope.get("warnings") or []]
        self.data = envelope.get("data")
        self.diff = envelope.get("diff")


def _install_hint():
    return f"The role {HOST_ROLE} installs a runtime that matches this collection."


def _is_executable_file(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def locate(runtime_path=None, search_path=None):
    """Return the runtime's path: `runtime_path`, else `berth` on `search_path`, else the fallbacks."""
    if runtime_path:
        if _is_executable_file(runtime_path):
            return runtime_path
        raise RuntimeMissing(
            f"The Berth runtime is not at {runtime_path} (runtime_path): no executable file there. "
            + _install_hint(),
            details={"runtime_path": runtime_path},
        )
    directories = [d for d in (search_path or "").split(os.pathsep) if d]
    candidates = [os.path.join(d, EXECUTABLE) for d in directories] + list(FALLBACK_LOCATIONS)
    fallbacks = " or ".join(FALLBACK_LOCATIONS)
    for candidate in candidates:
        if _is_executable_file(candidate):
            return candidate
    raise RuntimeMissing(
        f"The Berth runtime (berth) is not installed on this host: it is neither on PATH nor at "
        f"{fallbacks}. Install it with the role {HOST_ROLE}, or set runtime_path.",
        details={"searched": candidates},
    )


def _tail(text):
    return "\n".join(text.strip().splitlines()[-_STDERR_TAIL_LINES:])


class BerthRuntime:
    """One runtime executable, called as `berth ARGS... --json` through `run`.

    `run(argv, stdin_text_or_None) -> (rc, stdout, stderr)` is injected so that this class needs
    no AnsibleModule (the modules pass `AnsibleModule.run_command`).
    """

    def __init__(self, path, run):
        self.path = path
        self._run = run

    def call(self, args, spec=None, check=False):
        """Run a command of protocol 1; `spec` goes to stdin as JSON. Returns a `Response`."""
        envelope = self._envelope(args, spec, check)
        self._require_protocol(envelope)
        return self._response(envelope)

    def version(self):
        """`berth version`'s payload, whatever protocol the runtime speaks.

        The version command is how a role finds out that a host needs another runtime, so it
        must not be refused for the very mismatch it is meant to detect.
        """
        return self._response(self._envelope(["version"], None, False)).data or {}

    def _envelope(self, args, spec, check):
        argv = [self.path, *args, "--json"] + (["--check"] if check else [])
        stdin = None if spec is None else json.dumps(spec, sort_keys=True)
        shown = " ".join([EXECUTABLE, *args])
        try:
            rc, stdout, stderr = self._run(argv, stdin)
        except OSError as exc:
            raise BadResponse(
                f"Cannot run the Berth runtime at {self.path}: {exc}. {_install_hint()}",
                details={"path": self.path},
            ) from exc
        try:
            envelope = json.loads(stdout)
        except ValueError:
            envelope = None
        if isinstance(envelope, dict) and "protocol" in envelope:
            return envelope
        if rc == _USAGE_ERROR_RC:
            why = (
                f"The runtime at {self.path} did not understand `{shown}`: it is probably older or "
                f"newer than this collection. {_install_hint()}"
            )
        elif rc != 0:
            why = f"`{shown}` failed with exit code {rc} and no JSON result."
        else:
            why = f"`{shown}` did not print a Berth JSON result."
        raise BadResponse(
            f"{why} stderr: {_tail(stderr)}" if stderr.strip() else why,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
        )

    def _require_protocol(self, envelope):
        spoken = envelope.get("protocol")
        if spoken != PROTOCOL:
            raise ProtocolMismatch(
                f"The host runtime at {self.path} (berth {envelope.get('runtime', '?')}) speaks "
                f"protocol {spoken}; this collection speaks protocol {PROTOCOL}. {_install_hint()}",
                details={"runtime_protocol": spoken, "collection_protocol": PROTOCOL},
            )

    def _response(self, envelope):
        if envelope.get("ok") is True:
            return Response(envelope)
        error = envelope.get("error")
        if envelope.get("ok") is not False or not isinstance(error, dict):
            raise BadResponse(
                f"The runtime at {self.path} answered neither ok nor a typed error.",
                stdout=json.dumps(envelope, sort_keys=True),
            )
        raise RuntimeFailed(
            str(error.get("kind") or "error"),
            str(error.get("message") or "the runtime reported an error without a message"),
            details=error.get("details") or {},
            actions=list(envelope.get("actions") or []),
            changed=bool(envelope.get("changed", False)),
        )
