"""`sgp-action emulator`: the command line of the local SGP emulator (docs/emulator.md#flags)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from sgp_action.emulator.config import EmulatorConfig
from sgp_action.emulator.faults import FAULT_NAMES, FaultSpecError, parse_faults
from sgp_action.emulator.records import DIALECTS
from sgp_action.emulator.server import EmulatorServer
from sgp_action.emulator.variants import VARIANTS, VariantSpecError, parse_variants


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be zero or more seconds")
    return value


def _fault(text: str) -> str:
    try:
        parse_faults([text])
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _variant(text: str) -> str:
    try:
        parse_variants([text])
    except VariantSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the emulator's flags on `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default 0)")
    parser.add_argument("--api-key", help="accept only this x-api-key (401 otherwise); default: any non-empty key")
    parser.add_argument(
        "--account-id", help="accept only this x-selected-account-id (403 otherwise); default: any non-empty id"
    )
    parser.add_argument(
        "--dialect",
        choices=DIALECTS,
        default="current",
        help="API shapes to serve: current (SDK 0.7.0: id, build_status, uppercase deploy statuses) or legacy "
        "(build_id, status, lowercase deploy statuses, agent_name allowed on every build)",
    )
    parser.add_argument("--build-seconds", type=_seconds, default=2.0, help="how long a build runs (default 2)")
    parser.add_argument(
        "--deploy-seconds", type=_seconds, default=2.0, help="how long a deployment takes to turn healthy (default 2)"
    )
    parser.add_argument("--seed", type=int, help="seed for the random choices of the http-500 fault")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        type=_fault,
        metavar="SPEC",
        help="inject a fault (repeatable): http-500=P, rate-limit=N, sse-drop-after=N, slow=S, "
        "lose-create-response, deploy-fail, sse-hold-open; change at run time with POST /_emulator/faults "
        f"(known: {', '.join(FAULT_NAMES)})",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        type=_variant,
        metavar="NAME",
        help="answer the way another plausible SGP server would where the platform's documents are silent "
        "(repeatable; change at run time with POST /_emulator/variants): "
        + "; ".join(f"{name}: {text}" for name, text in VARIANTS.items()),
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The emulator configuration that parsed flags describe."""
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        account_id=args.account_id,
        dialect=args.dialect,
        build_seconds=args.build_seconds,
        deploy_seconds=args.deploy_seconds,
        seed=args.seed,
        faults=list(args.fault),
        variants=list(args.variant),
    )


def serve(config: EmulatorConfig) -> int:
    """Listen, print the one `listening` line, serve until SIGINT or SIGTERM, then exit 0."""
    try:
        parse_variants(config.variants)
    except VariantSpecError as exc:
        print(f"sgp-action emulator: {exc}.", file=sys.stderr)
        return 2
    try:
        server = EmulatorServer(config).start()
    except OSError as exc:
        print(
            f"sgp-action emulator: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}. "
            "Choose another --port (0 takes a free one) or stop what holds it.",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"SGP emulator listening on {server.url}", flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The standalone parser (`python -m sgp_action.emulator`)."""
    parser = argparse.ArgumentParser(prog="sgp-action emulator", description="Start the local SGP emulator.")
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the emulator until a signal stops it."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return serve(config_from_args(args))
