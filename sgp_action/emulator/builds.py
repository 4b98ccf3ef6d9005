"""Build requests and build logs: the multipart rules of docs/sgp-api.md#create-a-build and Dockerfile-driven log lines.

The emulator runs no container build. It reads the uploaded archive's root `Dockerfile` and prints what Docker's
classic builder would: one `Step i/N : <instruction>` line per instruction, the output of `RUN echo ...`, and
Docker's "returned a non-zero code" line for a `RUN false` / `RUN exit N`, then image push lines.
"""

from __future__ import annotations

import json
import random
import shlex
import tarfile
import zlib
from dataclasses import dataclass, field

from sgp_action.emulator.multipart import FilePart, Form

PLATFORMS = ("linux/amd64", "linux/arm64", "linux/arm/v7")
TEXT_FIELDS = (
    "image_name",
    "image_tag",
    "agent_name",
    "agent_id",
    "image_url",
    "build_args",
    "platform",
    "source_commit",
    "source_ref",
    "source_repo",
    "source_subpath",
    "source_dirty",
    "working_tree_hash",
)
MAX_DOCKERFILE_BYTES = 1024 * 1024


class BuildRequestError(ValueError):
    """The create-build form breaks a rule of docs/sgp-api.md#create-a-build; the message is the 400 `detail`."""


@dataclass
class BuildRequest:
    """A validated create-build form."""

    image_name: str
    image_tag: str
    agent_name: str | None
    agent_id: str | None
    archive: FilePart | None
    image_url: str | None
    build_args: dict[str, str]
    platform: str | None
    source: dict[str, str | bool | None] = field(default_factory=dict)
    working_tree_hash: str | None = None


def _single(form: Form, name: str) -> str | None:
    values = form.fields.get(name, [])
    if len(values) > 1:
        raise BuildRequestError(f"form field {name!r} was sent {len(values)} times; send it once")
    if not values:
        return None
    return values[0]


def parse_build_form(form: Form) -> BuildRequest:
    """Validate a create-build form (docs/sgp-api.md#create-a-build) or raise `BuildRequestError`."""
    if "context_archive" in form.fields:
        raise BuildRequestError("context_archive must be a file part (with a filename), not a text field")
    for name in form.files:
        if name != "context_archive":
            raise BuildRequestError(f"unexpected file part {name!r}; only context_archive is a file")
    values = {name: _single(form, name) for name in TEXT_FIELDS}
    archives = form.files.get("context_archive", [])
    if len(archives) > 1:
        raise BuildRequestError("send exactly one context_archive file")
    archive = archives[0] if archives else None
    image_name = (values["image_name"] or "").strip()
    if not image_name:
        raise BuildRequestError("image_name is required")
    image_url = values["image_url"] or None
    if (archive is None) == (image_url is None):
        raise BuildRequestError("send exactly one image source: context_archive (a tar.gz file) or image_url")
    if archive is not None and archive.size == 0:
        raise BuildRequestError("context_archive is empty; send a non-empty tar.gz build context")
    agent_name = values["agent_name"] or None
    agent_id = values["agent_id"] or None
    if (agent_name is None) == (agent_id is None):
        raise BuildRequestError("send exactly one agent identifier: agent_name (a new agent) or agent_id (existing)")
    platform = values["platform"] or None
    if platform is not None and platform not in PLATFORMS:
        raise BuildRequestError(f"platform must be one of {', '.join(PLATFORMS)}; got {platform!r}")
    build_args: dict[str, str] = {}
    if values["build_args"]:
        try:
            parsed = json.loads(values["build_args"])
        except json.JSONDecodeError as exc:
            raise BuildRequestError(f"build_args must be a JSON object string: {exc}") from None
        if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
        ):
            raise BuildRequestError('build_args must be a JSON object of strings, e.g. {"KEY": "VALUE"}')
        build_args = parsed
    dirty_text = values["source_dirty"]
    dirty: bool | None = None
    if dirty_text is not None:
        if dirty_text.strip().lower() not in ("true", "false"):
            raise BuildRequestError(f"source_dirty must be 'true' or 'false'; got {dirty_text!r}")
        dirty = dirty_text.strip().lower() == "true"
    source: dict[str, str | bool | None] = {
        "source_commit": values["source_commit"],
        "source_ref": values["source_ref"],
        "source_repo": values["source_repo"],
        "source_subpath": values["source_subpath"],
        "source_dirty": dirty,
    }
    return BuildRequest(
        image_name=image_name,
        image_tag=(values["image_tag"] or "latest").strip() or "latest",
        agent_name=agent_name,
        agent_id=agent_id,
        archive=archive,
        image_url=image_url,
        build_args=build_args,
        platform=platform,
        source=source,
        working_tree_hash=values["working_tree_hash"] or None,
    )


def read_root_dockerfile(path: str) -> str:
    """Return the text of `Dockerfile` at the archive's root; raise `ValueError` saying what is wrong."""
    try:
        with tarfile.open(path, mode="r:gz") as archive:
            for member in archive:
                name = member.name
                while name.startswith("./"):
                    name = name[2:]
                if name != "Dockerfile" or not member.isfile():
                    continue
                handle = archive.extractfile(member)
                if handle is None:
                    break
                return handle.read(MAX_DOCKERFILE_BYTES).decode("utf-8", "replace")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ValueError(f"the build context is not a gzipped tar archive ({exc})") from None
    raise ValueError("the build context has no Dockerfile at its root")


def dockerfile_instructions(text: str) -> list[str]:
    """Split a Dockerfile into instructions as Docker's parser does: continuations joined, comments dropped."""
    instructions: list[str] = []
    current: list[str] = []
    for raw in text.splitlines():
        stripped = raw.strip()
        # Comment lines are removed even in the middle of a continued instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current.append(stripped[:-1].strip())
            continue
        current.append(stripped)
        instructions.append(" ".join(part for part in current if part))
        current = []
    if current:
        instructions.append(" ".join(part for part in current if part))
    out: list[str] = []
    for instruction in instructions:
        keyword, _, rest = instruction.partition(" ")
        out.append(f"{keyword.upper()} {rest.strip()}".strip())
    return out


@dataclass
class RunOutcome:
    """What a simulated `RUN` prints and how it ends."""

    output: list[str]
    exit_code: int
    shown_command: str


def simulate_run(arguments: str) -> RunOutcome:
    """Simulate a RUN: `echo` prints, `false` / `exit N` fail; `&&` and `;` chains run in order."""
    exec_form: list[str] | None = None
    if arguments.startswith("["):
        try:
            loaded = json.loads(arguments)
            if isinstance(loaded, list) and all(isinstance(a, str) for a in loaded):
                exec_form = loaded
        except json.JSONDecodeError:
            exec_form = None
    if exec_form is not None:
        shown = " ".join(exec_form)
        script = exec_form[2] if len(exec_form) >= 3 and exec_form[1] == "-c" else shlex.join(exec_form)
    else:
        shown = f"/bin/sh -c {arguments}"
        script = arguments
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        return RunOutcome([], 0, shown)
    if any(tok in ("||", "|", "&") for tok in tokens):
        return RunOutcome([], 0, shown)  # too shell-like to simulate faithfully: treat as a success
    output: list[str] = []
    commands: list[list[str]] = [[]]
    for tok in tokens:
        if tok in ("&&", ";"):
            commands.append([])
        else:
            commands[-1].append(tok)
    for command in commands:
        if not command:
            continue
        if command[0] == "echo":
            output.append(" ".join(command[1:]))
        elif command == ["false"]:
            return RunOutcome(output, 1, shown)
        elif command[0] == "exit":
            code = int(command[1]) if len(command) > 1 and command[1].isdigit() else 0
            return RunOutcome(output, code, shown)
    return RunOutcome(output, 0, shown)


def human_size(size: int) -> str:
    """Docker's way of showing a byte count (decimal units)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.2f}{unit}"
        value /= 1000
    return f"{size}B"


def plan_logs(
    dockerfile: str | None, problem: str | None, archive_size: int, image_ref: str, repository: str, seed: str
) -> tuple[list[str], bool]:
    """The log lines of one archive build and whether it succeeds."""
    rng = random.Random(seed)

    def short_id() -> str:
        return f"{rng.getrandbits(48):012x}"

    lines = [
        f"Received build context: {human_size(archive_size)} ({archive_size} bytes)",
        f"Sending build context to Docker daemon  {human_size(archive_size)}",
    ]
    if problem is not None or dockerfile is None:
        lines.append(f"ERROR: {problem or 'the build context has no Dockerfile at its root'}")
        return lines, False
    instructions = dockerfile_instructions(dockerfile)
    if not instructions:
        lines.append("ERROR: the Dockerfile has no instructions")
        return lines, False
    total = len(instructions)
    for index, instruction in enumerate(instructions, start=1):
        lines.append(f"Step {index}/{total} : {instruction}")
        keyword, _, rest = instruction.partition(" ")
        if keyword == "RUN":
            container = short_id()
            lines.append(f" ---> Running in {container}")
            outcome = simulate_run(rest.strip())
            lines.extend(outcome.output)
            if outcome.exit_code != 0:
                lines.append(f"The command '{outcome.shown_command}' returned a non-zero code: {outcome.exit_code}")
                return lines, False
            lines.append(f"Removing intermediate container {container}")
        lines.append(f" ---> {short_id()}")
    digest = "".join(f"{rng.getrandbits(32):08x}" for _ in range(8))
    tag = image_ref.rsplit(":", 1)[-1]
    lines += [
        f"Successfully built {short_id()}",
        f"Successfully tagged {image_ref}",
        f"The push refers to repository [{repository}]",
        f"{short_id()}: Pushed",
        f"{tag}: digest: sha256:{digest} size: {1000 + rng.randrange(2000)}",
    ]
    return lines, True
