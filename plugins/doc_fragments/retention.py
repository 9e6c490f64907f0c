# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # Grandfather-father-son retention of backups.

    DOCUMENTATION = r"""
options:
  keep_last:
    description: Keep the N newest backups.
    type: int
  keep_daily:
    description: Keep the newest backup of each of the N most recent days that have one.
    type: int
  keep_weekly:
    description: Keep the newest backup of each of the N most recent ISO weeks that have one.
    type: int
  keep_monthly:
    description: Keep the newest backup of each of the N most recent months that have one.
    type: int
notes:
  - Retention (grandfather-father-son) runs only when one of O(keep_last), O(keep_daily), O(keep_weekly),
    O(keep_monthly) is set. A backup is kept when any rule keeps it, and the newest complete backup is never deleted.
"""
