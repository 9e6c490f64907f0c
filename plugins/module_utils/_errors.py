# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exception types of the keel.ops engine.

Every exception carries a message written for the person running the play: what is wrong and how to fix
it. Modules catch KeelError once in main() and hand str(error) to fail_json, so no traceback reaches users.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class KeelError(Exception):
    """Base class: the message is user-facing."""


class ConfigError(KeelError):
    """The options given to a module are invalid or contradict each other."""


class DependencyError(KeelError):
    """A Python library or an executable the task needs is missing where the module runs."""
