# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance mode through HAProxy's runtime API, for haproxy_maintenance: the backend's servers drained and put
in maintenance before a step that needs the app quiet, and back in service afterwards. Built on the rollout's
HAProxyLoadBalancer (drain, wait for sessions, maint; ready, wait until HAProxy marks it up). Entering names the
servers it took out, and leaving is given those, so a server an operator had taken out before stays out."""

from ansible_collections.keel.ops.plugins.module_utils._rollout.haproxy import MAINT, READY


def _servers(lb, servers):
    names = list(servers) or lb.server_names()
    lb.preflight(names)
    return names


def enter(lb, servers=(), check_mode=False):
    """Drain and put in maintenance each of `servers` (all of the backend's by default) not in maintenance yet."""
    names = _servers(lb, servers)
    before = lb.admin_states(names)
    changed = [name for name in names if before[name] != MAINT]
    sessions = {}
    if not check_mode:
        for name in changed:
            sessions[name] = lb.drain(name)
    return {"servers": [{"name": name, "before": before[name], "after": MAINT, "sessions_left": sessions.get(name)}
                        for name in names],
            "changed_servers": changed, "changed": bool(changed)}


def leave(lb, servers=(), check_mode=False):
    """Put each of `servers` back in service and wait until HAProxy marks it up."""
    names = _servers(lb, servers)
    before = lb.admin_states(names)
    changed = [name for name in names if before[name] != READY]
    if not check_mode:
        for name in changed:
            lb.enable(name, READY)
        for name in changed:
            lb.wait_serving(name, READY)
    return {"servers": [{"name": name, "before": before[name], "after": READY} for name in names],
            "changed_servers": changed, "changed": bool(changed)}
