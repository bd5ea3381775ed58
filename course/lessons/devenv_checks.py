"""Static checks of a development environment: a Dockerfile, a compose file and a Makefile.

Chapter 10's exercise asks for the three files of a service's development environment.
Grading them must not need a Docker daemon or the network, so nothing here builds an
image or starts a container: each file is parsed and its structure checked.

- The Dockerfile is read with ``dockerfile_parse.DockerfileParser`` (maintained by Red
  Hat's container tooling), whose ``structure`` gives each instruction with its lines.
- The compose file is read with ``yaml.compose``, which keeps the line of every node, so
  a failure can name the line to edit.
- The Makefile is read by the small parser at the end of this file (see ``parse_makefile``
  for why there is no library behind it).

Every check returns :class:`CheckResult` records: which check group, ok or not, the file
and line, what is wrong and how to fix it. A group that passes returns one ``ok`` record
saying what was found, so a report shows the good news too.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints
from dockerfile_parse import DockerfileParser

CHECK_GROUPS: dict[str, str] = {
    "dockerfile_multistage": "Dockerfile: a builder stage and a slim final stage",
    "dockerfile_nonroot": "Dockerfile: the app runs as a non-root user",
    "dockerfile_layer_order": "Dockerfile: dependencies installed before the code is copied",
    "dockerfile_no_secrets": "Dockerfile: no secret baked into the image",
    "compose_services": "compose: app, Redis and a mock API server, wired together",
    "compose_hot_reload": "compose: source code mounted and the server reloads on change",
    "makefile_targets": "Makefile: dev, test and lint targets",
}
"""Every check group, by id, with what it looks for."""

DOCKERFILE_NAMES = ("Dockerfile",)
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
MAKEFILE_NAMES = ("GNUmakefile", "makefile", "Makefile")  # GNU make's own search order


@dataclass(frozen=True)
class CheckResult:
    """One finding: a check group's verdict on one point, with the line to look at."""

    check: str
    ok: bool
    file: str
    line: int | None
    message: str
    fix: str = ""

    def __str__(self) -> str:
        where = f"{self.file}, line {self.line}" if self.line else self.file
        if self.ok:
            return f"ok    {self.check}: {where}: {self.message}"
        return f"FAIL  {self.check}: {where}: {self.message}\n      fix: {self.fix}"


def _ok(check: str, file: str, message: str) -> CheckResult:
    return CheckResult(check, True, file, None, message)


def _fail(check: str, file: str, line: int | None, message: str, fix: str) -> CheckResult:
    return CheckResult(check, False, file, line, message, fix)


def failures(results: Iterable[CheckResult], check: str | None = None) -> list[CheckResult]:
    """The failed results, optionally of one check group only."""
    return [r for r in results if not r.ok and (check is None or r.check == check)]


def report(results: Iterable[CheckResult]) -> str:
    """All results as text, one per line, failures with their fix."""
    return "\n".join(str(r) for r in results)


# ---------------------------------------------------------------------------- Dockerfile

DOCKERFILE = "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY...
    value: str  # everything after the keyword, continuation lines joined
    line: int  # 1-based line where the instruction starts
    content: str = ""  # the instruction as written, over all its lines

    def line_of(self, needle: str) -> int:
        """The line of this (possibly multi-line) instruction that contains ``needle``."""
        for offset, text in enumerate(self.content.splitlines()):
            if needle and needle in text:
                return self.line + offset
        return self.line


@dataclass
class Stage:
    index: int
    name: str | None  # the `AS name`, lower case as Docker compares it
    base: str
    line: int
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class ParsedDockerfile:
    preamble: list[Instruction]  # ARGs before the first FROM
    stages: list[Stage]

    @property
    def instructions(self) -> list[Instruction]:
        return self.preamble + [i for s in self.stages for i in s.instructions]


_HEREDOC = re.compile(r"<<-?\s*([\"']?)(\w+)\1")


def parse_dockerfile(text: str) -> ParsedDockerfile:
    """Split a Dockerfile into stages of instructions, each with its 1-based line.

    ``dockerfile_parse`` 2.x does not understand heredocs (``RUN <<EOF``): it reads each
    body line as an instruction. So heredoc bodies are cut out first (kept as blank lines,
    which keeps the numbering) and glued back onto the instruction that opened them.
    """
    lines = text.splitlines()
    bodies: dict[int, str] = {}  # 0-based line of the `<<WORD` -> heredoc body
    index = 0
    while index < len(lines):
        match = _HEREDOC.search(lines[index])
        if match and re.match(r"\s*(RUN|COPY|ADD)\b", _logical_start(lines, index), re.IGNORECASE):
            word, body, start = match.group(2), [], index
            index += 1
            while index < len(lines) and lines[index].strip() != word:
                body.append(lines[index])
                lines[index] = ""
                index += 1
            if index < len(lines):
                lines[index] = ""
            bodies[start] = "\n".join(body)
        index += 1
    parser = DockerfileParser(fileobj=io.BytesIO(("\n".join(lines) + "\n").encode("utf-8")))
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for item in parser.structure:
        keyword = str(item["instruction"]).upper()
        if keyword == "COMMENT":
            continue
        value = str(item["value"])
        for body_line in range(int(item["startline"]), int(item["endline"]) + 1):
            if body_line in bodies:
                value += "\n" + bodies[body_line]
        instruction = Instruction(keyword, value, int(item["startline"]) + 1, str(item["content"]))
        if keyword == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), name, words[0] if words else "", instruction.line))
        if stages:
            stages[-1].instructions.append(instruction)
        else:
            preamble.append(instruction)
    return ParsedDockerfile(preamble, stages)


def _logical_start(lines: Sequence[str], index: int) -> str:
    """The first physical line of the (possibly continued) instruction at ``index``."""
    while index > 0 and lines[index - 1].rstrip().endswith("\\"):
        index -= 1
    return lines[index]


def _split_args(value: str) -> list[str]:
    """Arguments of COPY/ADD/USER: JSON form (``["a", "b"]``) or shell-like words."""
    if value.lstrip().startswith("["):
        try:
            loaded = json.loads(value)
        except ValueError:
            pass
        else:
            if isinstance(loaded, list):
                return [str(x) for x in loaded]
    try:
        return shlex.split(value, comments=False)
    except ValueError:  # an unbalanced quote: fall back to plain words
        return value.split()


def _flags(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """``--from=builder --chown=app a b`` -> ({'from': 'builder', 'chown': 'app'}, ['a', 'b'])."""
    flags: dict[str, str] = {}
    rest: list[str] = []
    for arg in args:
        if arg.startswith("--") and not rest:
            key, _, val = arg[2:].partition("=")
            flags[key.lower()] = val
        else:
            rest.append(arg)
    return flags, rest


def check_dockerfile(text: str) -> list[CheckResult]:
    """Run every Dockerfile check group on ``text``."""
    parsed = parse_dockerfile(text)
    if not parsed.stages:
        groups = [g for g in CHECK_GROUPS if g.startswith("dockerfile_")]
        return [
            _fail(g, DOCKERFILE, None, "no FROM instruction: this is not a Dockerfile yet",
                  "start with `FROM python:3.12-slim AS builder`")
            for g in groups
        ]
    return [
        *_check_multistage(parsed),
        *_check_nonroot(parsed),
        *_check_layer_order(parsed),
        *_check_no_secrets(parsed),
    ]


def _check_multistage(parsed: ParsedDockerfile) -> list[CheckResult]:
    check = "dockerfile_multistage"
    stages = parsed.stages
    final = stages[-1]
    if len(stages) == 1:
        return [_fail(
            check, DOCKERFILE, final.line,
            "one stage only: compilers, pip's cache and build files all ship in the image you run",
            "add a builder stage (`FROM python:3.12-slim AS builder`) that installs the "
            "dependencies into a virtualenv, then a final `FROM python:3.12-slim` stage that "
            "copies only that virtualenv with `COPY --from=builder`",
        )]
    earlier = {s.name for s in stages[:-1] if s.name} | {str(s.index) for s in stages[:-1]}
    for instruction in final.instructions:
        if instruction.keyword in ("COPY", "ADD"):
            flags, _ = _flags(_split_args(instruction.value))
            if flags.get("from", "").lower() in earlier:
                return [_ok(check, DOCKERFILE,
                            f"{len(stages)} stages; the final stage copies from "
                            f"{flags['from']!r} (line {instruction.line})")]
    return [_fail(
        check, DOCKERFILE, final.line,
        f"{len(stages)} stages, but the final stage (FROM at line {final.line}) copies nothing "
        "from an earlier stage, so the earlier stages are wasted work",
        "in the final stage, `COPY --from=builder /opt/venv /opt/venv` (the name after `AS` "
        "in the builder's FROM) instead of installing again",
    )]


_ROOT_USERS = {"root", "0"}


def _check_nonroot(parsed: ParsedDockerfile) -> list[CheckResult]:
    check = "dockerfile_nonroot"
    final = parsed.stages[-1]
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        return [_fail(
            check, DOCKERFILE, final.line,
            f"the final stage (FROM at line {final.line}) has no USER, so the app runs as root",
            "create a user in the final stage (`RUN useradd --create-home --uid 10001 app`) "
            "and switch to it with `USER app` before CMD",
        )]
    last = users[-1]
    words = _split_args(last.value)
    user = words[0].split(":")[0] if words else ""
    if user.lower() in _ROOT_USERS or not user:
        return [_fail(
            check, DOCKERFILE, last.line,
            f"the last USER of the final stage is {last.value.strip()!r}: the app runs as root",
            "do the root-only work (apt-get, useradd) before switching, and end with "
            "`USER app` (a non-root user); never switch back to root",
        )]
    return [_ok(check, DOCKERFILE, f"the app runs as {user!r} (USER at line {last.line})")]


_MANIFEST = re.compile(
    r"(requirements[\w.-]*\.(txt|in)|constraints[\w.-]*\.txt|pyproject\.toml|poetry\.lock|"
    r"uv\.lock|Pipfile(\.lock)?|setup\.cfg|\.python-version)$"
)
_INSTALL = re.compile(
    r"\b(?:pip3?\s+install|python3?\s+-m\s+pip\s+install|uv\s+pip\s+install|uv\s+pip\s+sync|"
    r"uv\s+sync|poetry\s+install|pip-sync|pipenv\s+(?:install|sync))\b"
)
_TOOLING = {"pip", "setuptools", "wheel", "uv", "poetry", "pip-tools"}


def _is_dependency_install(run_value: str) -> bool:
    """A RUN that installs the project's dependencies (not just upgrades pip itself)."""
    for command in re.split(r"&&|\|\||;|\n", run_value):
        match = _INSTALL.search(command)
        if not match or "--no-deps" in command:
            continue
        after = [w for w in command[match.end():].split() if not w.startswith("-")]
        if after and all(w.split("=")[0].split("<")[0].split(">")[0] in _TOOLING for w in after):
            continue  # `pip install --upgrade pip`: tooling, not the app's dependencies
        return True
    return False


def _context_sources(instruction: Instruction) -> list[str] | None:
    """Build-context paths a COPY/ADD copies, or None when it copies from a stage/image."""
    if instruction.keyword not in ("COPY", "ADD"):
        return None
    flags, rest = _flags(_split_args(instruction.value))
    if "from" in flags or len(rest) < 2 or instruction.value.lstrip().startswith("<<"):
        return None
    return rest[:-1]


def _check_layer_order(parsed: ParsedDockerfile) -> list[CheckResult]:
    check = "dockerfile_layer_order"
    installs: list[Instruction] = []
    for stage in parsed.stages:
        code_copy: Instruction | None = None
        for instruction in stage.instructions:
            sources = _context_sources(instruction)
            is_code = sources is not None and any(not _MANIFEST.search(s.rstrip("/")) for s in sources)
            if is_code and code_copy is None:
                code_copy = instruction
            if instruction.keyword == "RUN" and _is_dependency_install(instruction.value):
                if code_copy is not None and not _installs_before(stage, instruction):
                    return [_fail(
                        check, DOCKERFILE, code_copy.line,
                        f"`COPY {code_copy.value.strip()}` (line {code_copy.line}) comes before the "
                        f"dependency install at line {instruction.line}: every code change "
                        "invalidates the cache from here on, so every build reinstalls everything",
                        "first copy only the dependency files (`COPY requirements.txt .`), run the "
                        "install, and copy the code after it",
                    )]
                installs.append(instruction)
    if not installs:
        first = parsed.stages[0]
        return [_fail(
            check, DOCKERFILE, first.line,
            "no dependency install found (pip install -r requirements.txt, uv sync, poetry "
            "install), so there is no dependency layer to cache",
            "copy the lock file (`COPY requirements.txt .`) and "
            "`RUN pip install -r requirements.txt` before copying the code",
        )]
    lines = ", ".join(str(i.line) for i in installs)
    return [_ok(check, DOCKERFILE, f"dependencies installed (line {lines}) before the code is copied")]


def _installs_before(stage: Stage, before: Instruction) -> bool:
    """Whether ``stage`` installs dependencies earlier than ``before``.

    A second install after the code is copied (``uv sync`` that adds the project itself)
    is fine as long as the dependencies were installed first.
    """
    for instruction in stage.instructions:
        if instruction is before:
            return False
        if instruction.keyword == "RUN" and _is_dependency_install(instruction.value):
            return True
    return False


_SECRET_WORDS = {
    "KEY", "APIKEY", "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASS",
    "CREDENTIAL", "CREDENTIALS", "PRIVATE", "AUTH",
}
_NOT_SECRET_LAST_WORDS = {"FILE", "PATH", "DIR", "URL", "HOST", "PORT", "NAME", "USER"}
_KEY_LIKE = re.compile(
    r"sk-[A-Za-z0-9_-]{16,}"  # OpenAI and Anthropic (sk-ant-...) keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face tokens
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
)
_SECRET_FILE = re.compile(r"(^|/)(\.env(\.[\w-]+)?|id_rsa|id_ed25519|[\w.-]+\.pem|\.netrc|\.npmrc)$")


def secret_like_name(name: str) -> bool:
    """``OPENAI_API_KEY`` and ``DB_PASSWORD`` are; ``OPENAI_API_KEY_FILE`` is a path, not a secret."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]
    if not words or words[-1] in _NOT_SECRET_LAST_WORDS:
        return False
    return any(w in _SECRET_WORDS or w.endswith("APIKEY") for w in words)


def key_like_value(value: str) -> str | None:
    """The part of ``value`` that looks like a real credential, if any."""
    match = _KEY_LIKE.search(value)
    return match.group(0) if match else None


def _pairs(instruction: Instruction) -> list[tuple[str, str]]:
    """ENV/ARG/LABEL key-value pairs; the legacy ``ENV KEY value`` form too."""
    words = _split_args(instruction.value)
    if instruction.keyword == "ENV" and words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    return [(w.partition("=")[0], w.partition("=")[2]) for w in words]


def _shown(secret: str) -> str:
    return secret[:6] + "..." if len(secret) > 8 else "..."


def _check_no_secrets(parsed: ParsedDockerfile) -> list[CheckResult]:
    check = "dockerfile_no_secrets"
    found: list[CheckResult] = []
    runtime_fix = (
        "delete it; the app reads the key from its environment at run time (compose "
        "`env_file: .env` or a secret manager), and a build step that needs it uses "
        "`RUN --mount=type=secret,id=...`"
    )
    for instruction in parsed.instructions:
        keyword, line = instruction.keyword, instruction.line
        if keyword in ("ENV", "ARG", "LABEL"):
            for name, value in _pairs(instruction):
                leaked = key_like_value(value)
                if leaked:
                    found.append(_fail(
                        check, DOCKERFILE, instruction.line_of(leaked),
                        f"{keyword} {name} holds what looks like a real credential "
                        f"({_shown(leaked)}): anyone who can pull the image can read it",
                        f"{runtime_fix}; and revoke that key, it has been shared",
                    ))
                elif keyword == "ARG" and secret_like_name(name):
                    found.append(_fail(
                        check, DOCKERFILE, instruction.line_of(name),
                        f"ARG {name} passes a secret as a build argument: its value is recorded "
                        "in the image history (`docker history`)",
                        runtime_fix,
                    ))
                elif keyword == "ENV" and secret_like_name(name) and value:
                    found.append(_fail(
                        check, DOCKERFILE, instruction.line_of(name),
                        f"ENV {name} bakes a secret into every container of this image "
                        "(`docker inspect` shows it)",
                        runtime_fix,
                    ))
        elif keyword == "RUN":
            leaked = key_like_value(instruction.value)
            if leaked:
                found.append(_fail(
                    check, DOCKERFILE, instruction.line_of(leaked),
                    f"RUN contains what looks like a real credential ({_shown(leaked)}): the "
                    "command line is stored in the image history",
                    f"{runtime_fix}; and revoke that key",
                ))
        sources = _context_sources(instruction) or []
        for source in sources:
            if _SECRET_FILE.search(source) and not source.endswith(".example"):
                found.append(_fail(
                    check, DOCKERFILE, line,
                    f"{keyword} {source} copies a secrets file into the image",
                    "never copy .env or keys; list them in .dockerignore and pass them at run "
                    "time (`env_file: .env` in compose)",
                ))
    return found or [_ok(check, DOCKERFILE, "no secret in ENV, ARG, LABEL, RUN or copied files")]


# ------------------------------------------------------------------------- compose file

COMPOSE = "compose.yaml"


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _items(node: yaml.Node | None) -> list[tuple[str, yaml.Node, yaml.Node]]:
    """(key, key node, value node) of a mapping node, YAML merge keys (``<<: *x``) applied."""
    if not isinstance(node, yaml.MappingNode):
        return []
    own: list[tuple[str, yaml.Node, yaml.Node]] = []
    merged: list[tuple[str, yaml.Node, yaml.Node]] = []
    for key_node, value_node in node.value:
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
        if key == "<<":
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            for source in sources:
                merged.extend(_items(source))
        else:
            own.append((key, key_node, value_node))
    names = {k for k, _, _ in own}
    return own + [m for m in merged if m[0] not in names]


def _get(node: yaml.Node | None, key: str) -> yaml.Node | None:
    return next((value for k, _, value in _items(node) if k == key), None)


def _strings(node: yaml.Node | None) -> list[str]:
    """Every scalar under ``node``, as text (keys of mappings included as ``key=value``)."""
    if isinstance(node, yaml.ScalarNode):
        return [str(node.value)]
    if isinstance(node, yaml.SequenceNode):
        return [s for child in node.value for s in _strings(child)]
    if isinstance(node, yaml.MappingNode):
        out: list[str] = []
        for key, _, value in _items(node):
            values = _strings(value) or [""]
            out.extend(f"{key}={v}" for v in values)
        return out
    return []


def _text(node: yaml.Node | None) -> str:
    return " ".join(_strings(node))


@dataclass(frozen=True)
class Service:
    name: str
    node: yaml.Node
    line: int

    def get(self, key: str) -> yaml.Node | None:
        return _get(self.node, key)

    def line_of(self, key: str) -> int:
        """The line of ``key:`` in this service, or of the service when it has none."""
        key_node = next((k for name, k, _ in _items(self.node) if name == key), None)
        return _line(key_node) if key_node is not None else self.line


@dataclass
class ComposeRoles:
    services: list[Service]
    services_line: int
    app: Service | None
    redis: Service | None
    mock: Service | None


def _image_name(image: str) -> str:
    """``docker.io/library/redis:7-alpine`` -> ``redis``."""
    name = image.split("@")[0].rsplit("/", 1)[-1]
    return name.split(":")[0].lower()


def compose_roles(root: yaml.Node | None) -> ComposeRoles | None:
    """Find the app, Redis and mock API services; None when there is no ``services:``."""
    found = next(((k, v) for name, k, v in _items(root) if name == "services"), None)
    if found is None or not isinstance(found[1], yaml.MappingNode):
        return None
    services_key, services_node = found
    services = [Service(name, value, _line(key)) for name, key, value in _items(services_node)]
    redis = next((s for s in services if "redis" in _image_name(_text(s.get("image")))), None)
    rest = [s for s in services if s is not redis]

    def is_mock(service: Service) -> bool:
        named = " ".join([service.name, _text(service.get("image")), _text(service.get("command")),
                          _text(service.get("entrypoint"))]).lower()
        return "mock" in named or "llm_server" in named

    mock = next((s for s in rest if is_mock(s)), None)
    built = [s for s in rest if s is not mock and s.get("build") is not None]
    app = next((s for s in built if s.name == "app"), built[0] if built else None)
    return ComposeRoles(services, _line(services_key), app, redis, mock)


def check_compose(text: str) -> list[CheckResult]:
    """Run every compose check group on ``text``."""
    groups = ("compose_services", "compose_hot_reload")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = int(mark.line) + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return [_fail(g, COMPOSE, line, f"not valid YAML: {problem}",
                      "fix the YAML first: indent with spaces, never tabs, and put a space "
                      "after every `:`")
                for g in groups]
    roles = compose_roles(root)
    if roles is None or not roles.services:
        return [_fail(g, COMPOSE, _line(root) if root is not None else None,
                      "no `services:` mapping", "start the file with `services:` and an `app:` "
                      "service under it") for g in groups]
    return [*_check_services(roles), *_check_hot_reload(roles)]


def _depends_on(service: Service) -> set[str]:
    node = service.get("depends_on")
    if isinstance(node, yaml.SequenceNode):
        return {str(n.value) for n in node.value if isinstance(n, yaml.ScalarNode)}
    return {key for key, _, _ in _items(node)}


def _environment(service: Service) -> list[tuple[str, int]]:
    """``KEY=value`` entries of ``environment:`` (list or mapping form) with their lines."""
    node = service.get("environment")
    if isinstance(node, yaml.SequenceNode):
        return [(str(n.value), _line(n)) for n in node.value if isinstance(n, yaml.ScalarNode)]
    return [(f"{key}={_text(value)}", _line(key_node)) for key, key_node, value in _items(node)]


def _check_services(roles: ComposeRoles) -> list[CheckResult]:
    check = "compose_services"
    found: list[CheckResult] = []
    where = roles.services_line
    names = ", ".join(s.name for s in roles.services)
    if roles.app is None:
        found.append(_fail(
            check, COMPOSE, where, f"no app service built from the Dockerfile (services: {names})",
            "add `app:` under `services:` with `build: .`",
        ))
    if roles.redis is None:
        found.append(_fail(
            check, COMPOSE, where, f"no Redis service (services: {names})",
            "add `redis:` with `image: redis:7-alpine`",
        ))
    if roles.mock is None:
        found.append(_fail(
            check, COMPOSE, where,
            f"no mock API server (services: {names}): development would call the real, paid API",
            "add a service with `mock` in its name (e.g. `mock-llm:`) that runs a fake LLM "
            "API, such as the course's server, built from its own folder (`build: ./mock_llm`)",
        ))
    app = roles.app
    if app is not None:
        depends = _depends_on(app)
        env = _environment(app)
        env_text = " ".join(entry for entry, _ in env)
        for entry, line in env:
            if re.search(r"://(localhost|127\.0\.0\.1)\b", entry):
                found.append(_fail(
                    check, COMPOSE, line,
                    f"`{entry}`: inside a container, localhost is the container itself",
                    "use the service's name as the host: `redis://redis:6379/0`, "
                    "`http://mock-llm:8001/v1`",
                ))
        for role, other in (("Redis", roles.redis), ("mock API", roles.mock)):
            if other is None:
                continue
            if other.name not in depends:
                found.append(_fail(
                    check, COMPOSE, app.line_of("depends_on"),
                    f"the app does not depend on {other.name!r}, so it may start before its {role}",
                    f"list `{other.name}` under the app's `depends_on:`",
                ))
            if not re.search(rf"://{re.escape(other.name)}(:|/|$|\s)", env_text):
                found.append(_fail(
                    check, COMPOSE, app.line_of("environment"),
                    f"no URL in the app's `environment:` points at {other.name!r}: the app "
                    f"cannot find its {role} (twelve-factor: configuration comes from the "
                    "environment)",
                    f"add an entry whose URL uses the service name as host, e.g. "
                    f"`://{other.name}:<port>`",
                ))
    if found:
        return found
    assert app is not None and roles.redis is not None and roles.mock is not None
    return [_ok(check, COMPOSE, f"app {app.name!r} uses redis {roles.redis.name!r} and mock API "
                f"{roles.mock.name!r}, by service name")]


def _bind_mounts(service: Service) -> list[tuple[str, int]]:
    """Host paths mounted into the service (short or long syntax), with their lines."""
    node = service.get("volumes")
    mounts = []
    if isinstance(node, yaml.SequenceNode):
        for entry in node.value:
            if isinstance(entry, yaml.ScalarNode):
                source = str(entry.value).split(":")[0]
                if source.startswith((".", "/", "~", "$")):
                    mounts.append((str(entry.value), _line(entry)))
            elif isinstance(entry, yaml.MappingNode) and _text(_get(entry, "type")) == "bind":
                mounts.append((_text(_get(entry, "source")), _line(entry)))
    return mounts


def _check_hot_reload(roles: ComposeRoles) -> list[CheckResult]:
    check = "compose_hot_reload"
    app = roles.app
    if app is None:
        return [_fail(check, COMPOSE, roles.services_line, "no app service to mount the code into",
                      "add `app:` with `build: .` first")]
    watch = _get(app.get("develop"), "watch")
    if isinstance(watch, yaml.SequenceNode) and watch.value:
        return [_ok(check, COMPOSE, f"app {app.name!r} uses `develop: watch` (line {_line(watch)})")]
    found = []
    mounts = _bind_mounts(app)
    if not mounts:
        found.append(_fail(
            check, COMPOSE, app.line_of("volumes"),
            f"the app service {app.name!r} mounts no source folder, so every code change needs "
            "a rebuild",
            "bind-mount the code: `volumes: [\"./app:/srv/app\"]` (host path first), or use "
            "`develop: watch`",
        ))
    command = _text(app.get("command"))
    if "--reload" not in command and "--debug" not in command:
        found.append(_fail(
            check, COMPOSE, app.line_of("command"),
            f"the app's command ({command or 'the image CMD'!s}) does not reload: mounted "
            "changes are only picked up on restart",
            "override the command for development, e.g. "
            "`command: uvicorn app.main:app --host 0.0.0.0 --reload`",
        ))
    if found:
        return found
    return [_ok(check, COMPOSE, f"app {app.name!r} mounts {mounts[0][0]!r} and runs with reload")]


# ----------------------------------------------------------------------------- Makefile

MAKEFILE = "Makefile"
REQUIRED_TARGETS = ("dev", "test", "lint")


@dataclass
class MakeRule:
    targets: tuple[str, ...]
    prerequisites: tuple[str, ...]
    line: int
    recipe: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class ParsedMakefile:
    rules: list[MakeRule]
    phony: dict[str, int]  # target -> line of the .PHONY that declares it
    phony_line: int | None
    space_indented: list[int]  # lines that look like recipe lines but start with spaces
    commented_targets: dict[str, int]  # `# lint: ...` -> line

    def rules_for(self, target: str) -> list[MakeRule]:
        return [r for r in self.rules if target in r.targets]


_ASSIGNMENT = re.compile(r"^\s*(?:(?:export|override|private)\s+)*[^\s:#=]+\s*(?:::?=|:::=|\?=|\+=|!=|=)")
_DIRECTIVE = re.compile(
    r"^\s*(ifeq|ifneq|ifdef|ifndef|else|endif|-?include|sinclude|export|unexport|vpath|undefine)\b"
)
_COMMENTED_RULE = re.compile(r"^\s*#+\s*([A-Za-z0-9_.-]+)\s*:(?!=)")


def _strip_comment(line: str) -> str:
    """Drop a ``#`` comment (``\\#`` is a literal hash)."""
    match = re.search(r"(?<!\\)#", line)
    return line[: match.start()] if match else line


def _rule_colon(line: str) -> int:
    """Index of the colon that separates targets from prerequisites, or -1.

    Colons inside ``$(...)``/``${...}`` (substitution references) do not count, nor does
    a ``:=`` assignment.
    """
    depth = 0
    for index, char in enumerate(line):
        if char in "({":
            depth += 1
        elif char in ")}":
            depth = max(0, depth - 1)
        elif char == ":" and depth == 0:
            return -1 if line[index + 1: index + 2] == "=" else index
    return -1


def parse_makefile(text: str) -> ParsedMakefile:
    """Find the rules, recipes and ``.PHONY`` targets of a GNU Makefile.

    There is no maintained Python library that parses Makefiles, and asking ``make -pn``
    means running make on untrusted input (and depends on make being installed). The
    subset that decides which targets exist is small, so it is parsed here: comments,
    ``\\`` continuations, ``define``/``endef`` blocks, conditionals, variable assignments
    (``X := a:b`` is not a rule), rules (``a b: c``, ``a::``, ``a: ; cmd``) and their
    tab-indented recipes. Variables are not expanded: ``$(NAME):`` is not a target we
    can name.
    """
    rules: list[MakeRule] = []
    phony: dict[str, int] = {}
    phony_line: int | None = None
    space_indented: list[int] = []
    commented: dict[str, int] = {}
    current: MakeRule | None = None
    in_define = False
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index]
        while line.endswith("\\") and index + 1 < len(lines):  # join continuation lines
            index += 1
            line = line[:-1] + " " + lines[index].lstrip()
        index += 1
        if in_define:
            in_define = not re.match(r"^\s*endef\b", line)
            continue
        if line.startswith("\t") and current is not None:
            if line.strip():
                current.recipe.append((number, line.strip()))
            continue
        commented_rule = _COMMENTED_RULE.match(line)
        if commented_rule:
            commented.setdefault(commented_rule.group(1), number)
        code = _strip_comment(line)
        if not code.strip():
            continue  # blank and comment-only lines do not end a recipe
        if re.match(r"^\s*(?:(?:export|override)\s+)?define\b", code):
            in_define = True
            current = None
            continue
        if _DIRECTIVE.match(code) and not _ASSIGNMENT.match(code):
            continue
        if _ASSIGNMENT.match(code):
            current = None
            continue
        if code.startswith(" ") and current is not None:
            space_indented.append(number)  # a recipe indented with spaces: "missing separator"
            continue
        colon = _rule_colon(code)
        if colon == -1:
            current = None
            continue
        targets = tuple(code[:colon].split())
        rest = code[colon + 1:]
        if rest.startswith(":"):
            rest = rest[1:]  # double-colon rule
        rest, _, inline = rest.partition(";")
        if _ASSIGNMENT.match(rest):  # target-specific variable: `test: ARGS = -x`
            current = None
            continue
        rule = MakeRule(targets, tuple(rest.split()), number)
        if inline.strip():
            rule.recipe.append((number, inline.strip()))
        if ".PHONY" in targets:
            phony_line = phony_line or number
            for name in rule.prerequisites:
                phony.setdefault(name, number)
        rules.append(rule)
        current = rule
    return ParsedMakefile(rules, phony, phony_line, space_indented, commented)


def _effective_recipe(parsed: ParsedMakefile, target: str, seen: set[str] | None = None) -> list[str]:
    """The recipe lines ``make target`` runs: its own and its prerequisites'."""
    seen = seen if seen is not None else set()
    if target in seen:
        return []
    seen.add(target)
    commands = []
    for rule in parsed.rules_for(target):
        for prerequisite in rule.prerequisites:
            commands.extend(_effective_recipe(parsed, prerequisite, seen))
        commands.extend(command for _, command in rule.recipe)
    return commands


def check_makefile(text: str) -> list[CheckResult]:
    """Run the Makefile check group on ``text``."""
    check = "makefile_targets"
    parsed = parse_makefile(text)
    found: list[CheckResult] = []
    for number in parsed.space_indented:
        found.append(_fail(
            check, MAKEFILE, number,
            "this recipe line starts with spaces; make needs a tab (it stops with "
            "'missing separator')",
            "indent recipe lines with one tab character",
        ))
    for target in REQUIRED_TARGETS:
        rules = parsed.rules_for(target)
        if not rules:
            if target in parsed.commented_targets:
                line = parsed.commented_targets[target]
                found.append(_fail(
                    check, MAKEFILE, line, f"`{target}:` is only in a comment, so `make {target}` "
                    "fails with 'No rule to make target'",
                    f"uncomment the `{target}:` rule (no `#` before it) and give it a recipe",
                ))
            else:
                found.append(_fail(
                    check, MAKEFILE, parsed.phony_line,
                    f"no `{target}` target: `make {target}` fails with 'No rule to make target'",
                    f"add a rule `{target}:` followed by tab-indented commands",
                ))
            continue
        if not _effective_recipe(parsed, target):
            found.append(_fail(
                check, MAKEFILE, rules[0].line, f"`{target}` has no recipe, so it does nothing",
                f"put the command under `{target}:`, indented with a tab",
            ))
        if target not in parsed.phony:
            found.append(_fail(
                check, MAKEFILE, rules[0].line,
                f"`{target}` is not declared .PHONY: if a file or folder named {target!r} "
                f"exists, `make {target}` says it is up to date and runs nothing",
                f"add `{target}` to a `.PHONY: dev test lint` line",
            ))
    dev = _effective_recipe(parsed, "dev")
    if dev and not any("compose" in command for command in dev):
        found.append(_fail(
            check, MAKEFILE, parsed.rules_for("dev")[0].line,
            "`make dev` does not start the compose environment",
            "make its recipe `docker compose up --build`",
        ))
    if found:
        return found
    return [_ok(check, MAKEFILE, "dev, test and lint are phony targets with recipes; "
                "dev starts docker compose")]


# ------------------------------------------------------------------------------ together


def check_environment(dockerfile: str, compose: str, makefile: str) -> list[CheckResult]:
    """Every check group on the three files' contents, in ``CHECK_GROUPS`` order."""
    results = [*check_dockerfile(dockerfile), *check_compose(compose), *check_makefile(makefile)]
    order = list(CHECK_GROUPS)
    return sorted(results, key=lambda r: order.index(r.check))


def _find(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def check_folder(folder: str | Path) -> list[CheckResult]:
    """Check the Dockerfile, compose file and Makefile found in ``folder``."""
    folder = Path(folder)
    found: list[CheckResult] = []
    texts: list[str] = []
    for names, prefix in ((DOCKERFILE_NAMES, "dockerfile_"), (COMPOSE_NAMES, "compose_"),
                          (MAKEFILE_NAMES, "makefile_")):
        path = _find(folder, names)
        if path is None:
            found.extend(_fail(g, names[0], None, f"no {' or '.join(names)} in {folder}",
                               f"create {names[0]}") for g in CHECK_GROUPS if g.startswith(prefix))
            texts.append("")
        else:
            texts.append(path.read_text(encoding="utf-8"))
    if found:
        present = {r.check for r in found}
        rest = [r for r in check_environment(*texts) if r.check not in present]
        return sorted([*found, *rest], key=lambda r: list(CHECK_GROUPS).index(r.check))
    return check_environment(*texts)


def group_results(results: Iterable[CheckResult]) -> Iterator[tuple[str, list[CheckResult]]]:
    """(group id, its results) in ``CHECK_GROUPS`` order."""
    results = list(results)
    for group in CHECK_GROUPS:
        yield group, [r for r in results if r.check == group]
