"""The command line of the embedded stack (tools/stack.py start|status|stop|stop-service|start-service).
"""

from __future__ import annotations

import argparse
import json
import sys

from .constants import ALL_SERVICES, SERVICE_NAMES
from .process import StackError
from .stack import Stack


def print_status(stack: Stack) -> bool:
    """Print one line per recorded service; True if every one runs (or was skipped on purpose)."""
    facts, report = stack.facts(), stack.status()
    print(f"state dir: {stack.state_dir}")
    if not report:
        print("  no services recorded")
    healthy = True
    for name, (running, text) in report.items():
        skipped = facts[name].get("available") is False
        state = "running" if running else ("skipped" if skipped else "stopped")
        healthy = healthy and (running or skipped)
        print(f"  {name:<11} {state:<8} {text}")
    return healthy


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", help="state directory (default: $KEEL_STACK_DIR or <repo>/.stack)")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", parents=[common], help="start (or reuse) the services")
    start.add_argument("--services", default=",".join(ALL_SERVICES))
    start.add_argument("--fleet", type=int, default=4, help="number of app containers (default 4)")
    start.add_argument("--require", default="", help="services that must start (e.g. containers)")
    status = sub.add_parser("status", parents=[common], help="show what runs")
    status.add_argument("--json", action="store_true", help="print the facts JSON")
    sub.add_parser("stop", parents=[common], help="stop everything the stack started")
    for verb in ("stop-service", "start-service"):
        one = sub.add_parser(verb, parents=[common], help=f"{verb.split('-', maxsplit=1)[0]} one service")
        one.add_argument("name", choices=SERVICE_NAMES)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    stack = Stack(args.state_dir)
    try:
        if args.command == "start":
            stack.start(args.services, fleet=args.fleet, require=args.require or ())
            print_status(stack)
        elif args.command == "status":
            if args.json:
                print(json.dumps(stack.facts(), indent=2, sort_keys=True))
                return 0
            return 0 if print_status(stack) else 1
        elif args.command == "stop":
            stack.stop()
        elif args.command == "stop-service":
            stack.stop_service(args.name)
        elif args.command == "start-service":
            stack.start_service(args.name)
            print_status(stack)
    except StackError as err:
        print(f"stack: {err}", file=sys.stderr)
        return 1
    return 0
