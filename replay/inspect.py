"""Inspect live Reverb tables: `python -m replay.inspect {info,top,sample,priorities,checkpoint} ADDRESS ...`.

ADDRESS is `host:port` of a Reverb server. (`encore-inspect`, i.e. `python -m agents.inspect`, also takes a run
directory: it resolves it to the replay address and runs this tool's `main`.)
Only what Reverb's client exposes is used: server_info(), sample() and checkpoint().
"""

import argparse
import json
import sys
from typing import Callable, Dict, List, Optional

from replay._inspect import sampling, tables, top
from replay._inspect.connect import InspectError, connect, fetch_server_info, is_address, table_info

__all__ = ["InspectError", "is_address", "main"]

_ADDRESS_HELP = "host:port of a Reverb server"

_BLOCKED_HELP = (
    "'Blocked now' applies Reverb's CanInsert/CanSample rules to the insert and sample counts the "
    "server reports (completed calls; deletions = inserts - size). Those counts restart on a table "
    "reset or checkpoint restore, so the verdict can be off until the table refills."
)
_SAMPLING_HELP = (
    "Sampling goes through the table's rate limiter like any consumer: it refuses up front if "
    "the limiter would block (unless --wait), and on tables that remove sampled items (queues, "
    "max_times_sampled) it needs --yes because the items it takes are lost to the real consumer."
)

_WAIT_HELP = (
    "when the rate limiter allows fewer samples than asked, wait for budget alongside the table's other "
    "consumers (they get that many fewer samples) instead of refusing"
)


def _parser(address_help: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="encore-inspect",
        epilog=_BLOCKED_HELP,
        description=f"Inspect live Reverb tables. ADDRESS is {address_help}.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, epilog: str = "") -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, epilog=epilog)
        sub.add_argument("address", metavar="ADDRESS", help=address_help)
        sub.add_argument(
            "--timeout",
            type=_positive_float,
            default=3.0,
            help="seconds to wait for the server to answer, or for a stalled sample (default 3)",
        )
        return sub

    info = command("info", "Every table: size, selectors, rate limiter, counts, blocking, signature.", _BLOCKED_HELP)
    info.add_argument("--json", action="store_true", help='print {"tables": [...]} instead of text')

    live = command("top", "A live view of per-table size, insert/sample rates and blocking (q quits).", _BLOCKED_HELP)
    live.add_argument(
        "--interval",
        type=_positive_float,
        default=1.0,
        help="seconds between refreshes, also the window rates are measured over (default 1)",
    )
    live.add_argument("--once", action="store_true", help="print one frame (rates over --interval) and exit")

    items = command("sample", "N sampled items: key, priority, probability, times_sampled and data.", _SAMPLING_HELP)
    items.add_argument("table", metavar="TABLE")
    items.add_argument("-n", type=_positive_int, default=1, help="number of items to sample (default 1)")
    items.add_argument("--json", action="store_true", help="print JSON instead of text")
    items.add_argument("--out", metavar="FILE.npz", help="also save info and data arrays (data/<path>) to FILE.npz")
    items.add_argument("--yes", action="store_true", help="sample even if that removes items from the table")
    items.add_argument("--wait", action="store_true", help=_WAIT_HELP)

    prios = command("priorities", "The table's priority distribution estimated from samples.", _SAMPLING_HELP)
    prios.add_argument("table", metavar="TABLE")
    prios.add_argument("--samples", type=_positive_int, default=1000, help="items to sample (default 1000)")
    prios.add_argument("--bins", type=_positive_int, default=10, help="histogram bins (default 10)")
    prios.add_argument("--png", metavar="FILE", help="also save the histogram as a PNG")
    prios.add_argument("--yes", action="store_true", help="sample even if that removes items from the table")
    prios.add_argument("--wait", action="store_true", help=_WAIT_HELP)

    command("checkpoint", "Ask the server to write a checkpoint of all tables and print its path.")
    return parser


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _sampled(args: argparse.Namespace, count: int) -> List[sampling.SampledItem]:
    address, client, infos = connect(args.address, args.timeout)
    info = table_info(infos, args.table, address)
    reason = sampling.consumption_reason(info)
    if reason and not args.yes:
        raise InspectError(f"{reason}; pass --yes to sample anyway")
    return sampling.sample(client, info, count, address, args.timeout, wait=args.wait)


def _run(args: argparse.Namespace) -> None:
    if args.command == "info" and len(args.addresses) > 1:
        _info_of_shards(args)
    elif args.command == "info":
        address, _, infos = connect(args.address, args.timeout)
        ordered = [infos[name] for name in sorted(infos)]
        if args.json:
            print(json.dumps({"address": address, "tables": [tables.describe(i) for i in ordered]}, indent=2))
        else:
            print(f"Reverb server {address}: {len(ordered)} table(s)")
            print("\n\n".join(tables.render(i) for i in ordered))
    elif args.command == "top":
        address, client, _ = connect(args.address, args.timeout)
        top.run(lambda: fetch_server_info(client, args.timeout), address, args.interval, args.once)
    elif args.command == "sample":
        items = _sampled(args, args.n)
        if args.out:
            sampling.save_npz(items, args.out)
        if args.json:
            print(json.dumps({"table": args.table, "items": [sampling.item_json(i) for i in items]}, indent=2))
        else:
            print("\n".join(sampling.item_text(j, item) for j, item in enumerate(items)))
        if args.out:
            print(f"saved {len(items)} item(s) to {args.out}", file=sys.stderr if args.json else sys.stdout)
    elif args.command == "priorities":
        dist = sampling.priority_distribution(_sampled(args, args.samples))
        print(sampling.histogram_text(args.table, dist, bins=args.bins))
        if args.png:
            sampling.save_png(args.table, dist, args.png)
            print(f"saved histogram to {args.png}")
    elif args.command == "checkpoint":
        address, client, _ = connect(args.address, args.timeout)
        try:
            print(client.checkpoint())
        except RuntimeError as e:
            raise InspectError(f"checkpoint on {address} failed: {str(e).splitlines()[0]}") from None


def _info_of_shards(args: argparse.Namespace) -> None:
    """`info` of each replay shard, then every table's counts summed over the shards."""
    shards = []
    for address in args.addresses:
        _, _, infos = connect(address, args.timeout)
        shards.append((address, [infos[name] for name in sorted(infos)]))
    total: Dict[str, Dict[str, int]] = {}
    for _, infos in shards:
        for info in infos:
            d = tables.describe(info)
            sums = total.setdefault(info.name, dict.fromkeys(_SUMMED, 0))
            for field in _SUMMED:
                sums[field] += d[field]
    if args.json:
        described = [{"address": a, "tables": [tables.describe(i) for i in infos]} for a, infos in shards]
        print(json.dumps({"shards": described, "total": total}, indent=2))
        return
    for index, (address, infos) in enumerate(shards):
        print(f"Replay shard {index} of {len(shards)}, Reverb server {address}: {len(infos)} table(s)")
        print("\n\n".join(tables.render(i) for i in infos) + "\n")
    print(f"All {len(shards)} shards:")
    for name, sums in total.items():
        print(
            f"  {name}: size {sums['current_size']} / {sums['max_size']}, "
            f"inserts / samples {sums['inserts']} / {sums['samples']}"
        )


_SUMMED = ("current_size", "max_size", "inserts", "samples")


def main(
    argv: Optional[List[str]] = None,
    *,
    resolve_addresses: Optional[Callable[[str], List[str]]] = None,
    address_help: str = _ADDRESS_HELP,
) -> int:
    """Runs the CLI; returns the exit status (problems are one line on stderr and status 1).

    `resolve_addresses` (a layer above replay, e.g. `agents.inspect`) turns the ADDRESS argument into the host:port
    of each replay shard first, raising InspectError when it cannot; `address_help` then says what ADDRESS may be.
    `info` shows every shard and their sum; the other commands work on one server.
    """
    args = _parser(address_help).parse_args(argv)
    try:
        args.addresses = [args.address] if resolve_addresses is None else resolve_addresses(args.address)
        if len(args.addresses) > 1 and args.command != "info":
            raise InspectError(
                f"{args.address} has {len(args.addresses)} replay shards ({', '.join(args.addresses)}); "
                f"`{args.command}` works on one server: pass one shard's host:port"
            )
        args.address = args.addresses[0]
        _run(args)
    except InspectError as e:
        print(f"encore-inspect: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
