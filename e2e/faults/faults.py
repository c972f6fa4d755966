#!/usr/bin/env python3
"""The fault suite: kills and outages against the real Pulseboard binary, with the damage counted.

Each scenario starts `pulseboard serve` and `pulseboard worker` as separate processes (so one can be
killed while the other lives) on a database of its own, drives load through the HTTP API, injects
one fault mid-way, restores what it broke, waits for the job queue to drain, and then counts from
the database and from an SMTP sink (in this process) what the fault cost:

  jobs lost      jobs that are not `done` once the queue drained (dead-lettered or never run)  must be 0
  jobs re-run    jobs claimed more than once (at-least-once delivery at work; reported)
  mails doubled  a recipient that got two messages with different Message-IDs                   must be 0
  mails resent   the same Message-ID delivered again (a crash between the relay's 250 and the
                 `sent` record; the mailbox collapses it; reported)
  mails lost     an acknowledged registration whose welcome mail never arrived                  must be 0
  rows lost      writes the API acknowledged (2xx) that are not in the database                 must be 0
  recover        seconds from the end of the fault (kill, broker/database back, space freed) to
                 the first sign of progress; what "progress" is is printed per scenario

The scenarios need no scheduler (so no monitoring checks run against the imported URLs) and use a
short lease (`jobs.lease_secs` = 3) so that a killed worker's jobs are taken over within seconds.

    python3 e2e/faults/faults.py                       # every scenario, SQLite and PostgreSQL
    python3 e2e/faults/faults.py --backend sqlite --only worker-kill-mail
    python3 e2e/faults/faults.py --runs 3 --markdown out.md   # medians over 3 runs, as a table

Settings from the environment: PULSEBOARD_BIN (default target/debug/pulseboard),
PULSEBOARD_FAULTS_PG_URL (the shared PostgreSQL server for the scenarios that do not restart it;
default postgres://postgres@127.0.0.1:5432/postgres). The PostgreSQL-restart and RabbitMQ-restart
scenarios start private servers on free ports (the shared ones are never stopped); the disk-full
scenario mounts a 16 MiB tmpfs (needs root). Everything is removed on exit, failure included.
"""

import argparse
import atexit
import glob
import io
import json
import os
import random
import shutil
import signal
import socket
import socketserver
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# Short lease and back-off: recovery in seconds, and an outage of a few seconds stays well within
# the retries (10 attempts at 0.5 s doubling, capped at 5 s: about 30 s of retrying).
APP_ENV = {
    "PULSEBOARD_JOBS__LEASE_SECS": "3",
    "PULSEBOARD_JOBS__POLL_INTERVAL_MS": "100",
    "PULSEBOARD_JOBS__BACKOFF_BASE_MS": "500",
    "PULSEBOARD_JOBS__BACKOFF_MAX_SECS": "5",
    "PULSEBOARD_JOBS__MAX_ATTEMPTS": "10",
    "PULSEBOARD_JOBS__SHUTDOWN_GRACE_SECS": "2",
    # The cheapest hash the configuration accepts: the suite measures faults, not Argon2.
    "PULSEBOARD_AUTH__ARGON2_MEMORY_KIB": "8",
    "PULSEBOARD_AUTH__ARGON2_ITERATIONS": "1",
    "PULSEBOARD_HTTP__UPLOAD_MIN_FREE_BYTES": "1048576",
    "PULSEBOARD_HTTP__SHUTDOWN_GRACE_SECS": "2",
    "PULSEBOARD_LOGGING__LEVEL": "warn",
    "PULSEBOARD_MAIL__TIMEOUT_SECS": "5",
}
PASSWORD = "fault-suite-password-1"
# A killed worker's jobs should be taken over within about a lease (ARCHITECTURE.md, "Jobs"): the
# lease, a heartbeat interval it may have just been renewed by, and a restart. See --strict.
TAKEOVER_BOUND = 3 * 3


class Failure(Exception):
    pass


class Skip(Exception):
    """A scenario that cannot run on this machine (a missing server program): said, not hidden."""


def log(msg):
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def wait_for(what, cond, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise Failure(f"timed out after {timeout} s waiting for {what}")


# ---------------------------------------------------------------- cleanup (runs on any exit)

CLEANUPS = []


def on_exit(fn):
    CLEANUPS.append(fn)
    return fn


def run_cleanups():
    while CLEANUPS:
        fn = CLEANUPS.pop()
        try:
            fn()
        except Exception as e:  # one failed clean-up must not skip the others
            print(f"[faults] clean-up step failed: {e}", file=sys.stderr)


atexit.register(run_cleanups)


def _signalled(signum, _frame):
    # atexit handlers run on SystemExit, not on a bare signal: turn SIGTERM/SIGINT into one.
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _signalled)
signal.signal(signal.SIGINT, _signalled)


# ---------------------------------------------------------------- SMTP sink


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that records (recipient, Message-ID) per accepted message.

    `delay` holds each message before its 250, so that a kill lands while mails are in flight.
    """

    def __init__(self, delay=0.0):
        self.delay = delay
        self.lock = threading.Lock()
        self.received = []  # (time, recipient, message_id)
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    self.session()
                except OSError:
                    pass  # a worker killed mid-conversation resets the connection: expected here

            def session(self):
                w = self.wfile
                w.write(b"220 faults.local ESMTP\r\n")
                rcpts = []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode("utf-8", "replace").strip()
                    up = cmd.upper()
                    if up.startswith("EHLO"):
                        w.write(b"250-faults.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    elif up.startswith("MAIL FROM:"):
                        rcpts = []
                        w.write(b"250 OK\r\n")
                    elif up.startswith("RCPT TO:"):
                        rcpts.append(cmd[8:].strip().strip("<>").lower())
                        w.write(b"250 OK\r\n")
                    elif up.startswith("DATA"):
                        w.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                        w.flush()
                        message_id = None
                        in_headers = True
                        while True:
                            l = self.rfile.readline()
                            if not l or l.rstrip(b"\r\n") == b".":
                                break
                            if in_headers:
                                t = l.decode("utf-8", "replace").rstrip("\r\n")
                                if t == "":
                                    in_headers = False
                                elif t.lower().startswith("message-id:"):
                                    message_id = t.split(":", 1)[1].strip()
                        if sink.delay:
                            time.sleep(sink.delay)
                        with sink.lock:
                            for r in rcpts:
                                sink.received.append((time.monotonic(), r, message_id))
                        w.write(b"250 OK: queued\r\n")
                    elif up.startswith("QUIT"):
                        w.write(b"221 Bye\r\n")
                        return
                    else:  # HELO, NOOP, RSET
                        w.write(b"250 OK\r\n")
                    w.flush()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self):
        return f"smtp://127.0.0.1:{self.port}?tls=none"

    def count(self):
        with self.lock:
            return len(self.received)

    def first_after(self, t):
        with self.lock:
            times = [r[0] for r in self.received if r[0] > t]
        return min(times) if times else None

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def tally(self, expected):
        """(lost, doubled, resent) for the set of `expected` recipients."""
        with self.lock:
            got = list(self.received)
        ids = {}
        for _, rcpt, mid in got:
            ids.setdefault(rcpt, []).append(mid)
        lost = sum(1 for e in expected if e.lower() not in ids)
        doubled = sum(len(set(v)) - 1 for v in ids.values())
        resent = sum(len(v) - len(set(v)) for v in ids.values())
        return lost, doubled, resent


# ---------------------------------------------------------------- HTTP client


class Http:
    def __init__(self, base):
        self.base = base

    def request(self, method, path, body=None, token=None, headers=None, timeout=10):
        h = dict(headers or {})
        data = None
        if body is not None and not isinstance(body, bytes):
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        elif body is not None:
            data = body
        if token:
            h["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode("utf-8", "replace")
        except (OSError, urllib.error.URLError) as e:
            # Connection refused or reset: the server is down. 0 is "no answer".
            return 0, str(e)

    def register(self, email):
        status, body = self.request("POST", "/user", {"email": email, "password": PASSWORD})
        if status == 200 or status == 201:
            return body["access_token"]
        return None

    def upload_zip(self, token, data):
        boundary = "faultsuite%016x" % random.getrandbits(64)
        body = (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"urls.zip\"\r\n"
            "Content-Type: application/zip\r\n\r\n"
        ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        return self.request(
            "POST",
            "/resources",
            body,
            token,
            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
            timeout=120,
        )


# ---------------------------------------------------------------- databases


class Database:
    """The scenario's database: a SQLite file in the data folder, or a fresh PostgreSQL database."""

    def __init__(self, backend, data_dir, name, pg_admin_url=None):
        self.backend = backend
        if backend == "sqlite":
            self.path = os.path.join(data_dir, "pulseboard.db")
            self.url = None
        else:
            self.admin = pg_admin_url
            self.name = name
            base = pg_admin_url.rsplit("/", 1)[0]
            self.url = f"{base}/{name}"
            self.psql(f'DROP DATABASE IF EXISTS "{name}"', admin=True)
            self.psql(f'CREATE DATABASE "{name}"', admin=True)

    def psql(self, sql, admin=False):
        r = subprocess.run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", self.admin if admin else self.url,
             "-c", sql],
            capture_output=True, text=True, timeout=30,
        )
        if r.returncode != 0:
            raise Failure(f"psql failed: {r.stderr.strip()}")
        return r.stdout

    def rows(self, sql):
        if self.backend == "sqlite":
            con = sqlite3.connect(self.path, timeout=10)
            try:
                return [tuple(str(c) if c is not None else "" for c in row) for row in con.execute(sql)]
            finally:
                con.close()
        out = self.psql(sql)
        return [tuple(line.split("|")) for line in out.splitlines() if line != ""]

    def value(self, sql):
        rows = self.rows(sql)
        return rows[0][0] if rows else None

    def drop(self):
        if self.backend == "postgres":
            self.psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', admin=True)


# ---------------------------------------------------------------- private servers


class PrivatePostgres:
    """A PostgreSQL server of our own (initdb on a temp folder, a free port), for the restart."""

    def __init__(self, workdir):
        bindir = None
        for cand in ["/usr/local/bin"] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
            if os.path.exists(os.path.join(cand, "initdb")):
                bindir = cand
                break
        if bindir is None:
            raise Failure("initdb not found (in /usr/local/bin or /usr/lib/postgresql/*/bin)")
        self.bindir = bindir
        self.dir = os.path.join(workdir, "pg")
        os.makedirs(self.dir)
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.run("initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres", "--no-sync")
        on_exit(self.stop)
        self.start()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, tool, *args):
        r = subprocess.run(self.as_user + [os.path.join(self.bindir, tool), *args],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise Failure(f"{tool} failed: {r.stdout}{r.stderr}")

    def start(self):
        self.run("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")

    def crash(self):
        # -m immediate: no checkpoint, every connection cut; the start replays the WAL.
        self.run("pg_ctl", "-D", f"{self.dir}/data", "-m", "immediate", "-w", "stop")

    def stop(self):
        if os.path.exists(f"{self.dir}/data/postmaster.pid"):
            self.run("pg_ctl", "-D", f"{self.dir}/data", "-m", "fast", "-w", "stop")


class PrivateRabbit:
    """A second RabbitMQ node (its own name, ports and folders), so the shared broker is untouched."""

    def __init__(self, workdir):
        if not shutil.which("rabbitmq-server") or not shutil.which("rabbitmqctl"):
            raise Skip("rabbitmq-server is not installed: no private broker to stop and start")
        self.dir = os.path.join(workdir, "rabbit")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)  # the server drops to the rabbitmq user
        self.port = free_port()
        self.node = f"faults_{os.getpid()}@localhost"
        with open(f"{self.dir}/rabbitmq.conf", "w") as f:
            # The system config may name 5672; this node's own file replaces it.
            f.write(f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        with open(f"{self.dir}/enabled_plugins", "w") as f:
            f.write("[].\n")
        dist = free_port()
        self.env = dict(
            os.environ,
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(dist),
            RABBITMQ_MNESIA_BASE=f"{self.dir}/mnesia",
            RABBITMQ_LOG_BASE=f"{self.dir}/log",
            RABBITMQ_PID_FILE=f"{self.dir}/pid",
            RABBITMQ_CONFIG_FILE=f"{self.dir}/rabbitmq.conf",
            RABBITMQ_ENABLED_PLUGINS_FILE=f"{self.dir}/enabled_plugins",
        )
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"
        on_exit(self.stop)
        self.started = False

    def start(self, wait=True):
        r = subprocess.run(["rabbitmq-server", "-detached"], env=self.env, capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            raise Failure(f"rabbitmq-server -detached failed: {r.stdout}{r.stderr}")
        self.started = True
        if wait:
            self.wait_up()

    def wait_up(self):
        try:
            wait_for("the private RabbitMQ node", lambda: port_open(self.port), 60, 0.2)
        except Failure:
            tail = "".join(open(p, errors="replace").read()[-2000:] for p in
                           glob.glob(f"{self.dir}/log/*.log"))
            raise Failure(f"the private RabbitMQ node did not start; its log ends:\n{tail}")

    def queues(self):
        """Messages ready and unacknowledged per queue, and consumers: a job left queued with its
        message still here is a consumer that did not resume; with none here, a lost message."""
        r = subprocess.run(["rabbitmqctl", "-n", self.node, "-q", "list_queues", "name", "messages_ready",
                            "messages_unacknowledged", "consumers"], env=self.env, capture_output=True,
                           text=True, timeout=60)
        return (r.stdout + r.stderr).strip()

    def stop(self):
        if self.started:
            subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env,
                           capture_output=True, timeout=60)
            self.started = False


# ---------------------------------------------------------------- the stack under test


class Proc:
    def __init__(self, stack, command):
        self.stack, self.command = stack, command
        self.start()

    def start(self):
        self.logfile = open(os.path.join(self.stack.workdir, f"{self.command}.log"), "ab")
        self.p = subprocess.Popen([self.stack.bin, self.command], env=self.stack.env,
                                  cwd=self.stack.workdir, stdout=self.logfile,
                                  stderr=subprocess.STDOUT)
        if self.command == "serve":
            wait_for(
                "GET /healthz",
                lambda: self.check_alive() and self.stack.http.request("GET", "/healthz")[0] == 200,
                60,
            )

    def check_alive(self):
        if self.p.poll() is not None:
            raise Failure(f"`pulseboard {self.command}` exited with {self.p.returncode}; log:\n"
                          + self.stack.tail(self.command))
        return True

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()
        self.logfile.close()

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logfile.close()


class Stack:
    def __init__(self, suite, backend, scenario, pg_admin_url=None, amqp_url=None, data_dir=None,
                 smtp_delay=0.0):
        self.backend, self.scenario = backend, scenario
        self.bin = suite.bin
        self.workdir = tempfile.mkdtemp(prefix=f"{backend}-{scenario}-", dir=suite.workdir)
        self.data_dir = data_dir or os.path.join(self.workdir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.port = free_port()
        self.http = Http(f"http://127.0.0.1:{self.port}")
        self.smtp = SmtpSink(smtp_delay)
        self.procs = []
        db_name = f"faults_{os.getpid()}_{scenario.replace('-', '_')}"
        self.db = Database(backend, self.data_dir, db_name, pg_admin_url)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PULSEBOARD_") and k not in ("DATABASE_URL", "AMQP_URL", "SMTP_URL")}
        env.update(APP_ENV)
        env.update(
            PULSEBOARD_DATA_DIR=self.data_dir,
            PULSEBOARD_HTTP__HOST="127.0.0.1",
            PULSEBOARD_HTTP__PORT=str(self.port),
            PULSEBOARD_HTTP__PUBLIC_URL=f"http://127.0.0.1:{self.port}",
            SMTP_URL=self.smtp.url(),
        )
        if self.db.url:
            env["DATABASE_URL"] = self.db.url
        if amqp_url:
            env["AMQP_URL"] = amqp_url
            env["PULSEBOARD_JOBS__AMQP_PREFIX"] = db_name
        self.env = env

    def start(self, command):
        p = Proc(self, command)
        self.procs.append(p)
        return p

    def tail(self, command, n=30):
        path = os.path.join(self.workdir, f"{command}.log")
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no log)"

    def close(self):
        for p in self.procs:
            p.stop()
        # Kept for the failure report: the folder is removed with the suite's.
        self.last_logs = "".join(f"--- {c}.log (last lines)\n{self.tail(c, 15)}"
                                 for c in dict.fromkeys(p.command for p in self.procs))
        self.smtp.close()
        self.db.drop()

    # The figures every scenario reports.
    def jobs(self):
        rows = self.db.rows("SELECT status, attempts FROM jobs")
        return {
            "jobs": len(rows),
            "lost": sum(1 for s, _ in rows if s != "done"),
            "rerun": sum(1 for _, a in rows if int(a) > 1),
            "unsent": self.mail_log_unsent(),
        }

    def not_done(self):
        return int(self.db.value("SELECT COUNT(*) FROM jobs WHERE status <> 'done' AND status <> 'dead'"))

    def drained(self):
        return self.not_done() == 0

    def wait_drained(self, stall=60, cap=300):
        """Waits while the queue makes progress: fails when no job has been claimed, retried or
        finished for `stall` s (a stuck or lost job, however loaded the machine), or after `cap` s
        in all. Both stay well below jobs.amqp_republish_secs (600 s), so a lost message that only
        the slow sweep would republish still fails the scenario instead of being waited out."""
        started = time.monotonic()
        seen, progressed = None, started
        while True:
            n, last_change = self.db.rows(
                "SELECT COUNT(*), MAX(updated_at) FROM jobs WHERE status <> 'done' AND status <> 'dead'"
                " UNION ALL SELECT 0, MAX(updated_at) FROM jobs")[:2]
            if int(n[0]) == 0:
                return
            now = time.monotonic()
            state = (n[0], last_change[1])
            if state != seen:
                seen, progressed = state, now
            if now - progressed >= stall or now - started >= cap:
                why = (f"no job claimed, retried or finished for {stall} s" if now - progressed >= stall
                       else f"{n[0]} jobs still unfinished after {cap} s")
                # What is left says why: never published (no ms_since_published), published and
                # lost (queued with it set), held by a worker (running, ms_to_lease_end).
                raise Failure(f"timed out after {now - started:.0f} s waiting for the job queue to "
                              f"drain ({why}); jobs left:\n{self.leftover_jobs()}")
            time.sleep(0.25)

    def leftover_jobs(self, limit=50):
        now = int(time.time() * 1000)
        cols = ("id", "kind", "status", "attempts", "ms_since_published", "ms_to_lease_end",
                "locked_by", "ms_to_run_at", "last_error")
        rows = self.db.rows(
            f"SELECT id, kind, status, attempts, {now} - published_at, locked_until - {now}, locked_by, "
            f"run_at - {now}, SUBSTR(REPLACE(REPLACE(last_error, '|', '/'), '\n', ' '), 1, 160) FROM jobs WHERE status <> 'done' AND status <> 'dead' "
            f"ORDER BY id LIMIT {limit}")
        total = self.db.value("SELECT COUNT(*) FROM jobs WHERE status <> 'done' AND status <> 'dead'")
        lines = [f"  {total} not done (now = {now} ms; first {min(limit, int(total or 0))}):",
                 "  " + " | ".join(cols)]
        lines += ["  " + " | ".join("-" if v in (None, "") else str(v) for v in r) for r in rows]
        return "\n".join(lines)

    def running_job_ids(self):
        return [r[0] for r in self.db.rows("SELECT id FROM jobs WHERE status = 'running'")]

    def all_done(self, ids):
        if not ids:
            return True
        n = self.db.value(f"SELECT COUNT(*) FROM jobs WHERE status = 'done' AND id IN ({','.join(ids)})")
        return int(n) == len(ids)

    def backlog(self):
        return int(self.db.value("SELECT COUNT(*) FROM jobs WHERE status = 'queued'"))

    def describe_jobs(self, ids):
        now = int(time.time() * 1000)
        return [dict(zip(("id", "status", "attempts", "ms_to_lease_end", "locked_by", "ms_to_run_at",
                          "last_error"), r)) for r in self.db.rows(
            f"SELECT id, status, attempts, locked_until - {now}, locked_by, run_at - {now}, last_error "
            f"FROM jobs WHERE id IN ({','.join(ids)})")]

    def mail_log_unsent(self):
        return int(self.db.value("SELECT COUNT(*) FROM mail_log WHERE state <> 'sent'"))


class Load:
    """Background writers: task creations and registrations, recording only what the API acknowledged."""

    def __init__(self, stack, token=None, task_threads=0, register_threads=0, rate=None,
                 description=""):
        self.stack, self.token = stack, token
        self.description = description
        self.rate = rate  # per thread, per second (None: as fast as answers come)
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.acked_tasks, self.acked_users = [], []
        self.failures = {}
        self.ok_times = []
        self.threads = [threading.Thread(target=self.tasks, args=(i,), daemon=True)
                        for i in range(task_threads)]
        self.threads += [threading.Thread(target=self.users, args=(i,), daemon=True)
                         for i in range(register_threads)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)

    def _record(self, status, ok, value, into, sent_at):
        with self.lock:
            if ok:
                into.append(value)
                self.ok_times.append((sent_at, time.monotonic()))
            else:
                self.failures[status] = self.failures.get(status, 0) + 1

    def _pace(self, started):
        if self.rate:
            time.sleep(max(0.0, 1.0 / self.rate - (time.monotonic() - started)))

    def tasks(self, n):
        i = 0
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            title = f"fault-{n}-{i}"
            i += 1
            status, _ = self.stack.http.request(
                "POST", "/tasks", {"title": title, "description": self.description}, self.token)
            self._record(status, status == 201, title, self.acked_tasks, t0)
            if status == 0:
                time.sleep(0.05)  # the server is down: don't spin
            self._pace(t0)

    def users(self, n):
        i = 0
        while not self.stop_flag.is_set():
            t0 = time.monotonic()
            email = f"u{n}-{i}-{random.getrandbits(32):08x}@faults.example"
            i += 1
            status, _ = self.stack.http.request("POST", "/user", {"email": email, "password": PASSWORD})
            self._record(status, status in (200, 201), email, self.acked_users, t0)
            if status == 0:
                time.sleep(0.05)
            self._pace(t0)

    def first_ok_after(self, t):
        """When the first request sent after `t` was acknowledged (one sent before may have been
        answered by the process that was about to die)."""
        with self.lock:
            times = [done for sent, done in self.ok_times if sent > t]
        return min(times) if times else None


def tasks_lost(stack, token_user_email, acked):
    """Acknowledged task titles missing from the user's tasks (from the database)."""
    titles = {r[0] for r in stack.db.rows(
        "SELECT t.title FROM tasks t JOIN users u ON u.id = t.user_id "
        f"WHERE u.email = '{token_user_email}'")}
    return sum(1 for t in acked if t not in titles), len(titles)


def secs(a, b):
    return None if a is None or b is None else round(b - a, 2)


# ---------------------------------------------------------------- scenarios
# Each returns a dict of figures; "must be 0" ones are asserted by the caller.


def worker_kill_mail(suite, backend):
    """kill -9 of the worker while welcome mails are being sent (the sink holds each 20 ms)."""
    st = suite.stack(backend, "worker-kill-mail", smtp_delay=0.02)
    try:
        st.start("serve")
        worker = st.start("worker")
        with Load(st, register_threads=3, rate=40) as load:
            wait_for("80 mails", lambda: st.smtp.count() >= 80, 60)
            worker.kill9()
            t_kill = time.monotonic()
            stranded = st.running_job_ids()
            if not stranded:
                raise Failure("the kill found no running job: the scenario tested nothing")
            backlog = st.backlog()
            worker.start()
            # Registrations go on for up to 8 s more: the takeover should happen under load.
            t_back = None
            while time.monotonic() - t_kill < 8:
                if st.all_done(stranded):
                    t_back = time.monotonic()
                    break
                time.sleep(0.1)
        if t_back is None:
            try:
                wait_for("the stranded jobs to be taken over", lambda: st.all_done(stranded), 120, 0.1)
            except Failure as e:
                raise Failure(f"{e}; those jobs now: {st.describe_jobs(stranded)}")
            t_back = time.monotonic()
        st.wait_drained()
        users = load.acked_users
        wait_for("every welcome mail", lambda: st.smtp.tally(users)[0] == 0, 30)
        lost, doubled, resent = st.smtp.tally(users)
        j = st.jobs()
        return dict(load=f"{len(users)} registrations", stranded=len(stranded),
                    jobs_lost=j["lost"], unsent_log=j["unsent"], jobs_rerun=j["rerun"], mails_lost=lost,
                    mails_doubled=doubled, mails_resent=resent, rows_lost=0,
                    recover=secs(t_kill, t_back), backlog_at_kill=backlog,
                    takeover_bound=TAKEOVER_BOUND,
                    progress="kill -> every job running at the kill is done")
    finally:
        st.close()


def make_zip(n):
    """A ZIP of `n` new URLs with repeats and bad lines interleaved, so that some of each fall on
    either side of the kill: after every 100th URL, an earlier one again in another spelling (an
    in-file duplicate), after every 250th a line that is not a URL. Returns (bytes, counts)."""
    lines, dups, bad = ["url"], 0, 0
    for i in range(n):
        lines.append(f"https://site{i}.faults.example.com/p?i={i}")
        if i % 100 == 99:
            j = i // 2
            lines.append(f"HTTPS://SITE{j}.FAULTS.EXAMPLE.COM:443/p?i={j}")
            dups += 1
        if i % 250 == 249:
            lines.append(f"not a url {i}")
            bad += 1
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("urls.csv", "\n".join(lines) + "\n")
    return buf.getvalue(), dict(total=len(lines) - 1, created=n, duplicates=dups, errors=bad)


def worker_kill_import(suite, backend):
    """kill -9 of the worker while it imports a ZIP of `--import-urls` URLs: the retry resumes from
    the position its last batch committed, with counters that stay exact."""
    st = suite.stack(backend, "worker-kill-import")
    n = suite.import_urls
    try:
        st.start("serve")
        worker = st.start("worker")
        email = "importer@faults.example"
        token = st.http.register(email)
        if not token:
            raise Failure("registration failed")
        archive, expected = make_zip(n)
        status, body = st.http.upload_zip(token, archive)
        if status != 202:
            raise Failure(f"upload answered {status}: {body}")
        rid = body["request_id"]

        def progress():
            s, b = st.http.request("GET", f"/processing-requests/{rid}", token=token)
            return b if s == 200 else None

        wait_for("a third of the import", lambda: (progress() or {}).get("processed", 0) >= n // 3, 120, 0.05)
        worker.kill9()
        t_kill = time.monotonic()
        # What the killed attempt committed: the position the retry must resume from.
        at_kill = progress()["processed"]
        attempts_at_kill = int(st.db.value("SELECT attempts FROM jobs WHERE kind = 'import_resources'"))
        worker.start()
        wait_for("the import job to be taken over", lambda: int(st.db.value(
            "SELECT attempts FROM jobs WHERE kind = 'import_resources'")) > attempts_at_kill, 60, 0.1)
        t_back = time.monotonic()
        # Resumed progress: the position moves past the kill's. A restart from zero would show a
        # lower position first (counters reset), so any sample below it fails the scenario.
        lowest = [at_kill]

        def resumed():
            b = progress()
            if not b:
                return None
            lowest[0] = min(lowest[0], b["processed"])
            return b["processed"] > at_kill or b["status"] in ("succeeded", "failed")
        wait_for("the import to progress past its position at the kill", resumed, 180, 0.02)
        t_resumed = time.monotonic()
        if lowest[0] < at_kill:
            raise Failure(f"the retry restarted: position {lowest[0]} after {at_kill} at the kill")
        final = wait_for("the import to finish",
                         lambda: (lambda b: b if b and b["status"] in ("succeeded", "failed") else None)(progress()),
                         180, 0.2)
        t_done = time.monotonic()
        st.wait_drained()
        count = int(st.db.value(
            "SELECT COUNT(*) FROM resources r JOIN users u ON u.id = r.user_id "
            f"WHERE u.email = '{email}'"))
        j = st.jobs()
        if final["status"] != "succeeded":
            raise Failure(f"the import ended {final['status']}: {final}")
        got = dict(total=final["total"], created=final["created"], duplicates=final["duplicates"],
                   errors=final["errors"]["count"])
        counters = f"created={got['created']} duplicates={got['duplicates']} errors={got['errors']}"
        if got["created"] + got["duplicates"] + got["errors"] != expected["total"]:
            raise Failure(f"counters do not add up to the {expected['total']} lines: {counters}")
        if got != expected:
            raise Failure(f"counters {got}, expected {expected}")
        return dict(load=f"import of {n} URLs", stranded=1, jobs_lost=j["lost"], unsent_log=j["unsent"], jobs_rerun=j["rerun"],
                    mails_lost=st.smtp.tally([email])[0], mails_doubled=st.smtp.tally([email])[1],
                    mails_resent=st.smtp.tally([email])[2],
                    rows_lost=max(0, n - count), rows_extra=max(0, count - n),
                    recover=secs(t_kill, t_resumed), claimed=secs(t_kill, t_back),
                    finish=secs(t_kill, t_done),
                    counters=f"{counters} (exact); resumed from line {at_kill} of {expected['total']}",
                    progress="kill -> the import's position moves past the kill's")
    finally:
        st.close()


def serve_kill_writes(suite, backend):
    """kill -9 of `serve` while task writes and registrations pour in; it restarts on the same port."""
    st = suite.stack(backend, "serve-kill-writes")
    try:
        serve = st.start("serve")
        st.start("worker")
        email = "writer@faults.example"
        token = st.http.register(email)
        with Load(st, token, task_threads=4, register_threads=1, rate=50) as load:
            time.sleep(3)
            serve.kill9()
            t_kill = time.monotonic()
            serve.start()
            time.sleep(3)
        t_back = load.first_ok_after(t_kill)
        st.wait_drained()
        users = load.acked_users + [email]
        wait_for("every welcome mail", lambda: st.smtp.tally(users)[0] == 0, 30)
        lost_rows, in_db = tasks_lost(st, email, load.acked_tasks)
        lost, doubled, resent = st.smtp.tally(users)
        j = st.jobs()
        return dict(load=f"{len(load.acked_tasks)} task writes + {len(load.acked_users)} registrations acked",
                    stranded=0, jobs_lost=j["lost"], unsent_log=j["unsent"], jobs_rerun=j["rerun"], mails_lost=lost,
                    mails_doubled=doubled, mails_resent=resent, rows_lost=lost_rows,
                    rows_extra=in_db - len(load.acked_tasks), recover=secs(t_kill, t_back),
                    failed_requests=load.failures, progress="kill -> first acknowledged write")
    finally:
        st.close()


def rabbitmq_restart(suite, backend):
    """The private RabbitMQ node stopped (rabbitmqctl stop) and started again under registrations."""
    rabbit = suite.rabbit()
    st = suite.stack(backend, "rabbitmq-restart", amqp_url=rabbit.url)
    try:
        st.start("serve")
        st.start("worker")
        with Load(st, register_threads=2, rate=20) as load:
            wait_for("mails through the broker", lambda: st.smtp.count() >= 20, 30)
            rabbit.stop()
            t_down = time.monotonic()
            time.sleep(2)
            rabbit.start()
            t_up = time.monotonic()
            time.sleep(3)
        for p in st.procs:
            p.check_alive()
        try:
            st.wait_drained()
        except Failure as e:
            raise Failure(f"{e}\nqueues on the private broker (ready, unacked, consumers):\n"
                          f"{rabbit.queues()}") from None
        users = load.acked_users
        wait_for("every welcome mail", lambda: st.smtp.tally(users)[0] == 0, 30)
        lost, doubled, resent = st.smtp.tally(users)
        j = st.jobs()
        return dict(load=f"{len(users)} registrations", stranded=0, jobs_lost=j["lost"], unsent_log=j["unsent"],
                    jobs_rerun=j["rerun"], mails_lost=lost, mails_doubled=doubled,
                    mails_resent=resent, rows_lost=0, outage=secs(t_down, t_up),
                    recover=secs(t_up, st.smtp.first_after(t_up)),
                    progress="broker up -> first mail delivered")
    finally:
        st.close()


def postgres_restart(suite, backend):
    """A private PostgreSQL server crashed (pg_ctl stop -m immediate) and started under writes."""
    pg = suite.private_pg()
    st = suite.stack(backend, "postgres-restart", pg_admin_url=pg.url)
    try:
        st.start("serve")
        st.start("worker")
        email = "writer@faults.example"
        token = st.http.register(email)
        with Load(st, token, task_threads=3, register_threads=1, rate=40) as load:
            time.sleep(3)
            pg.crash()
            t_down = time.monotonic()
            time.sleep(2)
            pg.start()
            t_up = time.monotonic()
            time.sleep(4)
        for p in st.procs:
            p.check_alive()
        st.wait_drained()
        users = load.acked_users + [email]
        wait_for("every welcome mail", lambda: st.smtp.tally(users)[0] == 0, 30)
        lost_rows, in_db = tasks_lost(st, email, load.acked_tasks)
        lost, doubled, resent = st.smtp.tally(users)
        j = st.jobs()
        return dict(load=f"{len(load.acked_tasks)} task writes + {len(load.acked_users)} registrations acked",
                    stranded=0, jobs_lost=j["lost"], unsent_log=j["unsent"], jobs_rerun=j["rerun"], mails_lost=lost,
                    mails_doubled=doubled, mails_resent=resent, rows_lost=lost_rows,
                    rows_extra=in_db - len(load.acked_tasks), outage=secs(t_down, t_up),
                    recover=secs(t_up, load.first_ok_after(t_up)), failed_requests=load.failures,
                    progress="database up -> first acknowledged write")
    finally:
        st.close()


def disk_full(suite, backend):
    """SQLite on a 16 MiB tmpfs filled up under task writes while the worker sends mail (the sink
    holds each message 0.5 s, so that jobs are mid-way when the disk fills); then space is freed."""
    mnt = tempfile.mkdtemp(prefix="disk-", dir=suite.workdir)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        raise Failure(f"cannot mount a tmpfs (root needed): {r.stderr.strip()}")

    @on_exit
    def unmount():
        subprocess.run(["umount", "-l", mnt], capture_output=True)

    st = suite.stack(backend, "disk-full", data_dir=mnt, smtp_delay=0.5)
    filler = os.path.join(mnt, "filler")
    try:
        st.start("serve")
        st.start("worker")
        email = "writer@faults.example"
        token = st.http.register(email)
        st.wait_drained()
        acked, statuses = [], {}
        desc = "x" * 8000
        # Registrations alongside: their jobs record their mails (mail_log, done) on the full disk.
        load = Load(st, register_threads=2, rate=20).__enter__()
        wait_for("a backlog of mail jobs", lambda: st.backlog() >= 10, 30)
        # Leave 1 MiB: a few hundred 8 KB tasks fill it.
        free = shutil.disk_usage(mnt).free
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - (1 << 20)))
        failures_in_row = 0
        t_full = None
        for i in range(2000):
            title = f"full-{i}"
            s, body = st.http.request("POST", "/tasks", {"title": title, "description": desc}, token)
            if s == 201:
                acked.append(title)
                failures_in_row = 0
            else:
                statuses.setdefault("first_error", f"{s} {body}"[:200])
                statuses[s] = statuses.get(s, 0) + 1
                failures_in_row += 1
                t_full = t_full or time.monotonic()
                # The disk stays full for 3 s: long enough for jobs to fail on it.
                if failures_in_row >= 20 and time.monotonic() - t_full >= 3:
                    break
                time.sleep(0.02)
        if not statuses:
            raise Failure("the disk never filled up: 2000 writes all succeeded")
        os.remove(filler)
        t_freed = time.monotonic()
        t_back = None
        for i in range(600):
            s, _ = st.http.request("POST", "/tasks", {"title": f"after-{i}", "description": desc}, token)
            if s == 201:
                acked.append(f"after-{i}")
                t_back = t_back or time.monotonic()
                if len([a for a in acked if a.startswith("after-")]) >= 20:
                    break
            elif t_back:
                raise Failure(f"a write failed ({s}) after writes had recovered")
            else:
                time.sleep(0.05)
        if t_back is None:
            raise Failure("writes did not recover within 600 attempts after space was freed; serve log:\n"
                          + st.tail("serve"))
        load.stop()
        for p in st.procs:
            p.check_alive()
        st.wait_drained()
        lost_rows, in_db = tasks_lost(st, email, acked)
        integrity = st.db.value("PRAGMA integrity_check")
        if integrity != "ok":
            raise Failure(f"PRAGMA integrity_check: {integrity}")
        users = load.acked_users + [email]
        wait_for("every welcome mail", lambda: st.smtp.tally(users)[0] == 0, 30)
        lost, doubled, resent = st.smtp.tally(users)
        for k, v in load.failures.items():
            statuses[f"register {k}"] = v
        j = st.jobs()
        return dict(load=f"{len(acked)} task writes + {len(load.acked_users)} registrations acked",
                    stranded=0, jobs_lost=j["lost"], unsent_log=j["unsent"],
                    jobs_rerun=j["rerun"], mails_lost=lost, mails_doubled=doubled, mails_resent=resent,
                    rows_lost=lost_rows, rows_extra=in_db - len(acked),
                    recover=secs(t_freed, t_back), failed_requests=statuses, integrity=integrity,
                    progress="space freed -> first acknowledged write")
    finally:
        st.close()
        unmount()
        CLEANUPS.remove(unmount)


SCENARIOS = [
    ("worker-kill-mail", worker_kill_mail, ("sqlite", "postgres")),
    ("worker-kill-import", worker_kill_import, ("sqlite", "postgres")),
    ("serve-kill-writes", serve_kill_writes, ("sqlite", "postgres")),
    ("rabbitmq-restart", rabbitmq_restart, ("sqlite", "postgres")),
    ("postgres-restart", postgres_restart, ("postgres",)),
    ("disk-full", disk_full, ("sqlite",)),
]
# unsent_log: a mail_log record left `sending` once the queue drained would be a job that ended
# without knowing whether its message went out.
MUST_BE_ZERO = ("jobs_lost", "mails_lost", "mails_doubled", "rows_lost", "unsent_log")


class Suite:
    def __init__(self, args, planned):
        self.args = args
        self.import_urls = args.import_urls
        self.workdir = tempfile.mkdtemp(prefix="pb-faults-")
        # The private PostgreSQL and RabbitMQ run as their own users and must reach their folders.
        os.chmod(self.workdir, 0o755)
        if args.keep:
            log(f"keeping the processes' logs in {self.workdir}")
        else:
            on_exit(lambda: shutil.rmtree(self.workdir, ignore_errors=True))
        # A copy, so that a rebuild of the binary during the run cannot change it between restarts.
        src = os.path.abspath(args.bin)
        if not os.access(src, os.X_OK):
            raise Failure(f"the pulseboard binary is missing: {src} (cargo build -p pulseboard)")
        self.bin = os.path.join(self.workdir, "pulseboard")
        shutil.copy2(src, self.bin)
        self.pg_url = args.pg_url
        self._pg = None
        self._rabbit = None
        self.rabbit_error = None
        self.last_stack = None
        if "rabbitmq-restart" in planned:
            # It takes seconds to boot: start it now, while the first scenarios run.
            try:
                self._rabbit = PrivateRabbit(self.workdir)
                self._rabbit.start(wait=False)
            except Skip as e:
                self.rabbit_error = e

    def stack(self, backend, scenario, **kw):
        if backend == "postgres":
            kw.setdefault("pg_admin_url", self.pg_url)
        self.last_stack = Stack(self, backend, scenario, **kw)
        return self.last_stack

    def private_pg(self):
        if self._pg is None:
            self._pg = PrivatePostgres(self.workdir)
        return self._pg

    def rabbit(self):
        if self.rabbit_error:
            raise self.rabbit_error
        if self._rabbit is None:
            self._rabbit = PrivateRabbit(self.workdir)
            self._rabbit.start()
        self._rabbit.wait_up()
        return self._rabbit


def fmt(v):
    if isinstance(v, float):
        return f"{v:.2f}"
    return "-" if v is None else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    ap.add_argument("--runs", type=int, default=1, help="runs per scenario; figures are medians")
    ap.add_argument("--import-urls", type=int, default=100_000)
    ap.add_argument("--bin", default=os.environ.get("PULSEBOARD_BIN", os.path.join(ROOT, "target/debug/pulseboard")))
    ap.add_argument("--pg-url", default=os.environ.get("PULSEBOARD_FAULTS_PG_URL",
                                                       "postgres://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--markdown", help="also write the table as Markdown to this file")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work folder (each process's log) instead of removing it")
    ap.add_argument("--strict", action="store_true",
                    help="fail, not warn, when a killed worker's jobs are taken over later than "
                         f"{TAKEOVER_BOUND} s under load (a known issue)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error(f"--runs must be at least 1, not {args.runs}")
    if args.import_urls < 1000:
        ap.error(f"--import-urls must be at least 1000 (the kill lands at a third), not {args.import_urls}")
    names = [s[0] for s in SCENARIOS]
    for o in args.only or []:
        if o not in names:
            ap.error(f"--only: unknown scenario {o!r} (one of {', '.join(names)})")
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)

    started = time.monotonic()
    plan = [(b, name, fn) for b in backends for name, fn, supported in SCENARIOS
            if b in supported and (not args.only or name in args.only)]
    suite = Suite(args, {name for _, name, _ in plan})
    results, failed, skipped, warnings = [], [], [], []
    for backend, name, fn in plan:
        runs = []
        for run in range(args.runs):
            log(f"{backend} / {name} (run {run + 1}/{args.runs})")
            t0 = time.monotonic()
            try:
                r = fn(suite, backend)
            except Skip as e:
                skipped.append(f"{backend} / {name}: {e}")
                log(f"SKIPPED: {e}")
                break
            except Failure as e:
                failed.append(f"{backend} / {name}: {e}")
                log(f"FAILED: {e}")
                print(getattr(suite.last_stack, "last_logs", ""), file=sys.stderr)
                break
            r["took"] = round(time.monotonic() - t0, 1)
            bad = [k for k in MUST_BE_ZERO if r.get(k)]
            log("  " + ", ".join(f"{k}={fmt(v)}" for k, v in r.items()))
            if bad:
                failed.append(f"{backend} / {name}: " + ", ".join(f"{k}={r[k]}" for k in bad))
            if "takeover_bound" in r and r["recover"] > r["takeover_bound"]:
                # KNOWN ISSUE (docs/reliability.md, "Findings"): storage::jobs::claim takes expired
                # leases only when the queued jobs do not fill the batch, so under a backlog a dead
                # worker's jobs wait for the backlog to drain. A failure with --strict, a warning
                # until that is fixed.
                msg = (f"{backend} / {name}: stranded jobs taken over after {r['recover']} s "
                       f"(> {r['takeover_bound']} s) with {r['backlog_at_kill']} jobs queued")
                (failed if args.strict else warnings).append(msg)
            runs.append(r)
        if runs:
            results.append((backend, name, runs))

    cols = ["jobs_lost", "jobs_rerun", "mails_lost", "mails_doubled", "mails_resent", "rows_lost",
            "recover", "took"]
    header = "| backend | scenario | load | " + " | ".join(c.replace("_", " ") for c in cols) + " |"
    lines = [header, "|" + "---|" * (len(cols) + 3)]
    for backend, name, runs in results:
        cells = []
        for c in cols:
            vals = [r.get(c) for r in runs if r.get(c) is not None]
            if not vals:
                cells.append("-")
            elif c in MUST_BE_ZERO or c in ("jobs_rerun", "mails_resent"):
                cells.append(str(max(vals)))  # the worst run, not the median
            else:
                cells.append(fmt(statistics.median(vals)))
        lines.append(f"| {backend} | {name} | {runs[-1]['load']} | " + " | ".join(cells) + " |")
    print()
    print("\n".join(lines))
    print("\nrecover = seconds; what it measures per scenario:")
    for backend, name, runs in results:
        extra = {k: v for k, v in runs[-1].items() if k in ("progress", "counters", "failed_requests", "outage",
                                                            "claimed", "finish", "rows_extra", "stranded")}
        print(f"  {backend} / {name}: " + "; ".join(f"{k}: {v}" for k, v in extra.items()))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    log(f"took {time.monotonic() - started:.0f} s")
    for sk in skipped:
        print(f"SKIPPED {sk}", file=sys.stderr)
    for w in warnings:
        print(f"WARNING (known issue; --strict fails on it) {w}", file=sys.stderr)
    if failed:
        print("\nFAULT SUITE FAILED:", file=sys.stderr)
        for f in failed:
            print(f"  {f}", file=sys.stderr)
        sys.exit(1)
    print("\nfault suite: green")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"fault suite: {e}", file=sys.stderr)
        sys.exit(1)
