# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exception types of keel.ops's module_utils, and the handler every module's main runs inside.

Every exception carries a message written for the person running the play: what is wrong and how to fix
it. Modules catch KeelError once in main() and hand str(error) to fail_json, so no traceback reaches users.
"""

import contextlib
import os


class KeelError(Exception):
    """Base class: the message is user-facing."""


class ConfigError(KeelError):
    """The options given to a module are invalid or contradict each other."""


class DependencyError(KeelError):
    """A Python library or an executable the task needs is missing where the module runs."""


class IntegrityError(KeelError):
    """Stored bytes do not match their checksum, do not decrypt or decompress, or a record read from a repository
    is not what keel.ops writes: nothing is restored from it."""


class DecryptionKeyError(KeelError):
    """The key given cannot decrypt the backup (wrong or missing)."""


class PostgresError(KeelError):
    """A PostgreSQL server or client tool refused or failed."""


class RedisError(KeelError):
    """A Redis server refused, failed or could not be reached; the message says which and what to do."""


class RedisAuthError(RedisError):
    """The server refused our credentials (or wants some): waiting for it longer will not help."""


class EngineError(KeelError):
    """The container engine (Docker, or Podman's Docker-compatible API) refused or failed an operation."""


def first_line(error):
    """The first line of an error's text (a Docker API error's explanation when it has one), or its class name."""
    text = str(getattr(error, "explanation", None) or error).strip()
    return text.splitlines()[0] if text else error.__class__.__name__


def where_it_broke(trace):
    """'function (file line N)' of the innermost frame in keel.ops' own code, for the last-resort message."""
    frames = [frame for frame in trace if os.path.abspath(frame.filename) != os.path.abspath(__file__)]
    ours = [frame for frame in frames if "/keel/ops/" in frame.filename.replace(os.sep, "/")] or frames
    if not ours:
        return "an unknown place"
    frame = ours[-1]
    path = frame.filename.replace(os.sep, "/")
    short = path.split("/plugins/", 1)[-1] if "/plugins/" in path else os.path.basename(path)
    return "%s (%s line %s)" % (frame.name, short, frame.lineno)


def unexpected_message(context, error):
    import traceback  # here, not at the top: keel-wal imports this file once per WAL segment and never needs it

    return ("%s: unexpected %s in %s: %s. This is a bug in keel.ops, not in your input: please report it with this "
            "message (-vvv shows the traceback)" % (context, error.__class__.__name__,
                                                    where_it_broke(traceback.extract_tb(error.__traceback__)),
                                                    str(error).strip() or "no details"))


@contextlib.contextmanager
def module_failures(module, context):
    """A module's main body runs inside this: a KeelError becomes fail_json with its message, and anything else
    (a bug) becomes fail_json saying what was being done, so the user always gets JSON, never a bare traceback.
    A module with an audit_log option leaves its audit entry on the way out (_audit.watch).
    fail_json and exit_json end the process with SystemExit, which passes through."""
    import traceback
    from ansible_collections.keel.ops.plugins.module_utils import _audit  # only modules need it, not keel-wal

    _audit.watch(module, context.split(" ", 1)[0])
    try:
        yield
    except KeelError as error:
        module.fail_json(msg="%s: %s" % (context, error))
    except Exception as error:  # pylint: disable=broad-except
        module.fail_json(msg=unexpected_message(context, error), exception=traceback.format_exc())
