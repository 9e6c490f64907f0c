# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The DR drill history of each host, kept in the backup repository beside the backups (drills/<host>.json):
a drill run from an AWX job's throw-away container still charts the drills before it. One object per host, so
hosts drilling at once never overwrite each other; written whole, atomically, by the storage layer."""

import json
import re

from ansible_collections.keel.ops.plugins.module_utils._dr.drill import HISTORY_KEPT, clean_history, history_with
from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError

PREFIX = "drills"


def history_key(host):
    """The object of a host's history; the host name is data, so anything but [A-Za-z0-9_.-] becomes '_'."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", host or "")
    if name.strip(".") == "":
        raise ConfigError("host must name the drilled host, got %r" % (host,))
    return "%s/%s.json" % (PREFIX, name)


def read_history(storage, key, warn):
    """The stored history, oldest first; an object that is not a JSON list is reported and read as empty."""
    if not storage.exists(key):
        return []
    try:
        history = json.loads(storage.get(key).decode("utf-8"))
    except ValueError as error:
        warn("the drill history %s is not JSON (%s): starting a new one" % (storage.describe(key), error))
        return []
    if not isinstance(history, list):
        warn("the drill history %s is not a list: starting a new one" % storage.describe(key))
        return []
    return history


def record(storage, host, entry=None, keep=HISTORY_KEPT, check_mode=False, warn=None):
    """Read a host's history and, given an entry, append it; returns (history, changed)."""
    key = history_key(host)
    history = read_history(storage, key, warn or (lambda text: None))
    if entry is None:
        return clean_history(history)[-keep:], False
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        raise ConfigError("entry must be a drill's history entry with an id (dr_drill_report's history[-1])")
    updated = history_with(history, entry, keep)
    if not check_mode:
        storage.put(key, json.dumps(updated, indent=1, sort_keys=True).encode("utf-8"))
    return updated, True
