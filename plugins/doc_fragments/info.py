# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # Filters and the staleness check shared by the *_info modules that list a repository (used with
    # keel.ops.repository, whose source option selects one source; every source when unset).

    DOCUMENTATION = r"""
options:
  labels:
    description: Only backups whose labels include all of these.
    type: dict
  since:
    description: Only backups taken at or after this ISO 8601 time.
    type: str
  verified:
    description: Only backups that were (V(true)) or were never (V(false)) verified.
    type: bool
  limit:
    description:
      - Return at most this many backups, newest first.
      - V(0) returns none but still reports RV(newest_age_hours) and RV(stale), for freshness checks.
    type: int
  max_age:
    description: Hours; warn and set RV(stale) when the newest matching backup is older, or there is none.
    type: float
"""
