"""A private production stack for fault tests, so killing its parts never touches the machine's
shared PostgreSQL and Redis that the rest of the suite runs on.

One stack per session: a PostgreSQL cluster made with initdb in a temporary folder, a
redis-server, the web server (daphne), Celery beat (the reconciler runs from the schedule, as in
production, every COEFVQ_RECONCILE_EVERY_S) and Celery workers that each test starts and kills.
Leases and the stuck-video delay are shortened through the environment so recovery takes seconds.
The tests talk to it the way its users and operators do: HTTP to the web server, the ingest
command, signals to processes, and SQL to read what the database says.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
import requests

from inference.synth import SynthSpec, render_video

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
RESULTS_DIR = REPO / "bench" / "results" / "faults"

# Short enough that a lost message or a dead worker is noticed within seconds; the lease stays
# longer than any one step on a tiny clip (model loading in a fresh worker included).
FAULT_SETTINGS = {
    "COEFVQ_STEP_LEASE_S": "12",
    "COEFVQ_STUCK_AFTER_S": "8",
    "COEFVQ_RECONCILE_EVERY_S": "2",
    "COEFVQ_REVIEW_LEASE_S": "10",
    "COEFVQ_FRAMES_PER_VIDEO": "4",
    "COEFVQ_FRAME_MAX_SIDE": "64",
}
TERMINAL = ("decided", "failed")


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: starts a private stack and breaks it (deselect: -m 'not faults')")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, *, timeout: float, what: str, every: float = 0.25):
    """Poll `check` until it returns something truthy; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Service:
    """A child process in a process group of its own, so a signal reaches everything it started
    (a Celery worker's pool processes and decoder children)."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Service:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the whole group: no cleanup, no acknowledgement, as in a crash or OOM kill."""
        if self.process is not None:
            self.signal_group(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a Celery worker finishes its task first), then SIGKILL if it takes too long."""
        if not self.running:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()  # the group: pool children outliving their parent too

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} ---\n" + "\n".join(text.splitlines()[-lines:])


class Postgres:
    """A throwaway cluster. initdb refuses to run as root, so as root the cluster belongs to the
    postgres user (its folder lives outside pytest's root-only temporary tree)."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.sockets = root / "run"
        self.port = free_port()
        self.bin = max(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/coefvq"

    def _run(self, *argv: str) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")

    def init(self) -> None:
        self.sockets.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        self.start()
        self._run("createdb", "-h", str(self.sockets), "-p", str(self.port), "coefvq")

    def start(self) -> None:
        # -l: a server writing to pg_ctl's own output would hold subprocess.run's pipe open.
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c full_page_writes=off -c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-o", options, "-w", "start")

    def restart(self) -> None:
        """Fast shutdown (open sessions are cut, their transactions rolled back), then start."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


class RedisServer:
    def __init__(self, root: Path, env: dict, log_dir: Path):
        self.dir = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.env, self.log_dir = env, log_dir
        self.service: Service | None = None

    def start(self, *, persistent: bool) -> None:
        """With persistence, every write is in the append-only file before it is acknowledged."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--save", "", "--appendonly", "yes" if persistent else "no", "--appendfsync", "always"]
        self.service = Service("redis", argv, self.env, self.log_dir).start()
        wait_until(self.ping, timeout=20, what="redis to answer")

    def stop(self) -> None:
        """SIGTERM: Redis shuts down cleanly (a persistent one syncs its file first)."""
        if self.service is not None:
            self.service.stop()

    def restart(self, *, persistent: bool) -> None:
        self.stop()
        self.start(persistent=persistent)

    def ping(self) -> bool:
        try:
            return self.client().ping()
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)

    def queued_tasks(self, task: str) -> int:
        """Messages for `task` waiting in the cpu and gpu queues."""
        client = self.client()
        messages = [message for queue in ("cpu", "gpu") for message in client.lrange(queue, 0, -1)]
        return sum(json.loads(message)["headers"]["task"] == task for message in messages)


@dataclass
class Stack:
    root: Path
    pg: Postgres
    redis: RedisServer
    env: dict
    tokens: list = field(default_factory=list)  # API tokens of two reviewers
    labels: list = field(default_factory=list)
    web_port: int = field(default_factory=free_port)
    services: dict = field(default_factory=dict)
    _workers_started: int = 0

    # --- processes ------------------------------------------------------------------------------

    def service(self, name: str, *argv: str) -> Service:
        self.services[name] = Service(name, list(argv), self.env, self.root / "logs").start()
        return self.services[name]

    def start_web(self) -> None:
        self.service("web", str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.web_port),
                     "coefvq_site.asgi:application")
        wait_until(lambda: self._get("/accounts/login/") == 200, timeout=90, what="the web server")

    def start_beat(self) -> None:
        self.service("beat", str(BIN / "celery"), "-A", "coefvq_site", "beat", "-l", "warning", "--pidfile=",
                     "-s", str(self.root / "beat-schedule"))

    def start_worker(self) -> Service:
        """One worker on both queues, one task at a time, as `scripts/run.sh` starts it."""
        self._workers_started += 1
        name = f"worker{self._workers_started}"
        return self.service(name, str(BIN / "celery"), "-A", "coefvq_site", "worker", "-Q", "cpu,gpu",
                            "--concurrency", "1", "-n", f"{name}@faults", "-l", "warning",
                            "--without-heartbeat", "--without-mingle", "--without-gossip")

    def workers(self) -> list[Service]:
        return [s for name, s in self.services.items() if name.startswith("worker") and s.running]

    def stop_workers(self) -> None:
        for worker in self.workers():
            worker.stop()

    def ensure_running(self) -> None:
        """Every shared part up (a test that failed half-way may have left one down)."""
        if not self.redis.ping():
            self.redis.start(persistent=False)
        try:
            self.rows("SELECT 1")
        except psycopg.OperationalError:
            self.pg.start()
        for name, start in (("web", self.start_web), ("beat", self.start_beat)):
            if not self.services.get(name) or not self.services[name].running:
                start()

    def reenqueued(self) -> int:
        """Videos the reconciler re-enqueued, as the running workers logged it."""
        return sum(int(line.split("Re-enqueued ")[1].split()[0]) for worker in self.workers()
                   for line in worker.log_path.read_text(errors="replace").splitlines() if "Re-enqueued " in line)

    def logs(self) -> str:
        return "\n".join(service.log_tail() for service in self.services.values())

    # --- the web app and the command line -------------------------------------------------------

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web_port}{path}"

    def _get(self, path: str) -> int | None:
        try:
            return requests.get(self.url(path), timeout=10).status_code
        except requests.ConnectionError:
            return None

    def api(self, method: str, path: str, *, as_reviewer: int = 0, **kwargs) -> requests.Response:
        return requests.request(method, self.url(path), timeout=60,
                                headers={"Authorization": f"Token {self.tokens[as_reviewer]}"}, **kwargs)

    def upload(self, clip: Path, caption: str) -> int:
        with clip.open("rb") as stream:
            response = self.api("POST", "/api/videos/", files={"file": (clip.name, stream, "video/mp4")},
                                data={"caption": caption})
        assert response.status_code == 201, (response.status_code, response.text[:300], self.services["web"].log_tail())
        return response.json()["id"]

    def ingest_command(self, clips: list[Path], *, caption: str, route: str) -> list[int]:
        """`manage.py ingest` onto the workers, as an operator runs it."""
        done = subprocess.run([sys.executable, "manage.py", "ingest", *map(str, clips), "--caption", caption,
                               "--route", route, "--json"], env=self.env, cwd=REPO, capture_output=True, text=True,
                              timeout=180, check=True)
        return [json.loads(line)["video_id"] for line in done.stdout.splitlines()]

    def web_answers(self) -> None:
        assert self._get("/accounts/login/") == 200
        assert self.api("GET", "/api/videos/").status_code == 200

    # --- what the database says -----------------------------------------------------------------

    def rows(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.pg.url, connect_timeout=5, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def states(self, video_ids: list[int]) -> dict[str, int]:
        try:
            return dict(self.rows("SELECT state, count(*) FROM moderation_video WHERE id = ANY(%s) GROUP BY state",
                                  list(video_ids)))
        except psycopg.OperationalError:
            return {}  # the database is restarting

    def wait_terminal(self, video_ids: list[int], *, timeout: float) -> float:
        """Block until every video is decided or failed; returns time.monotonic() at that moment."""
        def all_terminal():
            states = self.states(video_ids)
            return sum(states.get(s, 0) for s in TERMINAL) == len(video_ids)

        try:
            wait_until(all_terminal, timeout=timeout, what=f"{len(video_ids)} videos to end decided or failed",
                       every=0.5)
        except AssertionError as error:
            raise AssertionError(f"{error}: {self.states(video_ids)}\n{self.logs()}") from None
        return time.monotonic()

    def leased_in(self, state: str) -> list[int]:
        try:
            return [row[0] for row in self.rows(
                "SELECT id FROM moderation_video WHERE state = %s AND lease_expires_at > now()", state)]
        except psycopg.OperationalError:
            return []


# --- what must hold after every fault ----------------------------------------------------------


def assert_recovered(stack: Stack, video_ids: list[int]) -> dict:
    """Every video ended decided, each model scored it once, it was decided once and has exactly
    one review task, and the web app answers. Returns the counts for the results table."""
    states = stack.states(video_ids)
    assert states == {"decided": len(video_ids)}, (states, stack.rows(
        "SELECT id, state, error_reason FROM moderation_video WHERE id = ANY(%s) AND state <> 'decided'",
        list(video_ids)))
    assert stack.rows("SELECT 1 FROM pg_constraint WHERE conname = 'one_prediction_per_stage_model'")
    assert stack.rows("""SELECT video_id, stage, model_version_id, count(*) FROM moderation_prediction
                         GROUP BY 1, 2, 3 HAVING count(*) > 1""") == []
    # Each video has the prediction of the stage that decided it.
    assert stack.rows("""SELECT v.id FROM moderation_video v WHERE v.id = ANY(%s) AND NOT EXISTS
                         (SELECT 1 FROM moderation_prediction p WHERE p.video_id = v.id AND p.stage = v.decided_by
                          OR p.video_id = v.id AND v.decided_by = 'human')""", list(video_ids)) == []
    assert stack.rows("""SELECT video_id FROM moderation_videoevent WHERE video_id = ANY(%s)
                         AND to_state = 'decided' AND from_state <> 'decided'
                         GROUP BY video_id HAVING count(*) <> 1""", list(video_ids)) == []
    assert stack.rows("""SELECT v.id FROM moderation_video v LEFT JOIN moderation_reviewtask t ON t.video_id = v.id
                         WHERE v.id = ANY(%s) GROUP BY v.id HAVING count(t.id) <> 1""", list(video_ids)) == []
    stack.web_answers()
    attempts = stack.rows("SELECT count(*) FROM moderation_videoevent WHERE video_id = ANY(%s) "
                          "AND message LIKE 'Attempt %%'", list(video_ids))[0][0]
    predictions = stack.rows("SELECT count(*) FROM moderation_prediction WHERE video_id = ANY(%s)",
                             list(video_ids))[0][0]
    return {"videos": len(video_ids), "decided": states["decided"], "predictions": predictions,
            "step_attempts": attempts}


class Reviewer:
    """A reviewer on the REST API: claims the next item and decides it. Remembers every decision
    the server acknowledged, so a test can check none of them was lost."""

    def __init__(self, stack: Stack, which: int = 0):
        self.stack, self.which = stack, which
        self.acknowledged: list[int] = []  # review ids answered 201
        self.errors: list[int] = []  # status codes of requests that failed while something was down

    def claim(self) -> requests.Response | None:
        return self._post("/api/review-tasks/claim/")

    def decide(self, task: dict) -> requests.Response | None:
        decision = self._post(f"/api/review-tasks/{task['id']}/decision/",
                              json={"claim_token": task["claim_token"], "label": self.stack.labels[0]})
        if decision is not None and decision.status_code == 201:
            self.acknowledged.append(decision.json()["id"])
        return decision

    def review_one(self) -> bool:
        """Claim and decide one item; False when the queue is empty."""
        claim = self.claim()
        if claim is None or claim.status_code != 200:
            return claim is not None and claim.status_code != 204
        self.decide(claim.json())
        return True

    def _post(self, path: str, **kwargs) -> requests.Response | None:
        try:
            response = self.stack.api("POST", path, as_reviewer=self.which, **kwargs)
        except requests.ConnectionError:
            self.errors.append(0)
            return None
        if response.status_code >= 500:
            self.errors.append(response.status_code)
        return response

    def review_all(self, *, timeout: float = 60) -> None:
        wait_until(lambda: not self.review_one(), timeout=timeout, what="the review queue to empty", every=0)

    def assert_nothing_lost(self, video_ids: list[int]) -> None:
        """Every acknowledged decision is stored, and each of these videos has its one review."""
        kept = self.stack.rows("SELECT count(*) FROM moderation_review WHERE id = ANY(%s)", self.acknowledged)[0][0]
        assert kept == len(self.acknowledged)
        # A task is done exactly when it has its one review (Review.task is one-to-one).
        assert self.stack.rows("""SELECT t.id FROM moderation_reviewtask t LEFT JOIN moderation_review r
                                  ON r.task_id = t.id WHERE t.video_id = ANY(%s)
                                  AND (t.status <> 'done' OR r.id IS NULL)""", list(video_ids)) == []


# --- fixtures -----------------------------------------------------------------------------------


def _child_env(pg: Postgres, redis_server: RedisServer, root: Path) -> dict:
    return dict(
        os.environ,
        DATABASE_URL=pg.url, REDIS_URL=redis_server.url,
        COEFVQ_VAR_DIR=str(root / "var"), COEFVQ_MODEL_DIR=str(root / "models"),
        COEFVQ_MEDIA_ROOT=str(root / "media"), DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", COEFVQ_LOG_LEVEL="WARNING",
        **FAULT_SETTINGS,
    )


@pytest.fixture(scope="session")
def private_stack():
    root = Path(tempfile.mkdtemp(prefix="coefvq-faults-"))
    root.chmod(0o755)  # the postgres user reaches its cluster folder inside
    (root / "logs").mkdir()
    pg = Postgres(root / "pg")
    (root / "pg").mkdir()
    redis_server = RedisServer(root, {}, root / "logs")
    env = _child_env(pg, redis_server, root)
    redis_server.env = env
    stack = Stack(root=root, pg=pg, redis=redis_server, env=env)
    try:
        pg.init()
        redis_server.start(persistent=False)
        provisioned = subprocess.run([sys.executable, str(Path(__file__).with_name("provision.py"))], env=env,
                                     cwd=REPO, capture_output=True, text=True, timeout=300)
        assert provisioned.returncode == 0, provisioned.stderr[-3000:]
        facts = json.loads(provisioned.stdout.strip().splitlines()[-1])
        stack.tokens, stack.labels = facts["tokens"], facts["labels"]
        stack.start_web()
        stack.start_beat()
        yield stack
    finally:
        for service in stack.services.values():
            service.stop(timeout=10)
        redis_server.stop()
        try:
            pg.stop()
        except RuntimeError:
            pass
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def stack(private_stack, request):
    """The private stack with its database, broker, web server and beat up, no workers, and an
    empty broker (a failed test's leftovers are picked up by the reconciler, not replayed)."""
    private_stack.ensure_running()
    private_stack.redis.client().flushall()
    yield private_stack
    private_stack.stop_workers()


@pytest.fixture(scope="session")
def base_clip(tmp_path_factory) -> Path:
    """One second, no sound, 64x48: decoding and OCR stay well under a second."""
    return render_video(tmp_path_factory.mktemp("fault-clips") / "base.mp4",
                        SynthSpec(duration_s=1.0, with_audio=False, width=64, height=48, fps=5, motif="cat"))


@pytest.fixture
def clips(base_clip, tmp_path):
    """`clips(n)`: n distinct files (the same clip, a different trailing tag each)."""
    counter = iter(range(10**9))

    def make(n: int) -> list[Path]:
        made = []
        for _ in range(n):
            path = tmp_path / f"clip-{next(counter)}-{time.time_ns()}.mp4"
            path.write_bytes(base_clip.read_bytes() + f"#{path.name}".encode())
            made.append(path)
        return made

    return make


CAPTIONS = ["my cat sleeping in the sun", "selling pistols and ammo cheap", "cheap pills without prescription",
            "double your crypto today dm me"]


class FaultRecorder:
    """Collects one row per scenario and writes bench/results/faults/results.{json,md}."""

    def __init__(self):
        self.rows: list[dict] = []

    def record(self, scenario: str, *, fault_to_terminal_s: float | None, **numbers) -> None:
        seconds = None if fault_to_terminal_s is None else round(fault_to_terminal_s, 1)
        self.rows.append({"scenario": scenario, "fault_to_terminal_s": seconds, **numbers})

    def write(self) -> None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        command = "bash scripts/test.sh tests/faults -q"
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
        report = {"command": command, "commit": commit, "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average "
                             f"{os.getloadavg()[0]:.1f} at the end (a shared machine)",
                  "settings": FAULT_SETTINGS, "scenarios": self.rows}
        (RESULTS_DIR / "results.json").write_text(json.dumps(report, indent=2) + "\n")
        common = ("videos", "decided", "predictions", "step_attempts")
        lines = [f"Measured with `{command}` on {report['machine']}; settings: "
                 + ", ".join(f"{k}={v}" for k, v in FAULT_SETTINGS.items()) + ".", "",
                 "| scenario | fault to all terminal (s) | " + " | ".join(common) + " | other |",
                 "| --- | --- | " + " | ".join("---" for _ in common) + " | --- |"]
        for row in self.rows:
            other = ", ".join(f"{k} {v}" for k, v in row.items()
                              if k not in common and k not in ("scenario", "fault_to_terminal_s"))
            seconds = "n/a" if row["fault_to_terminal_s"] is None else row["fault_to_terminal_s"]
            lines.append(f"| {row['scenario']} | {seconds} | "
                         + " | ".join(str(row.get(k, "")) for k in common) + f" | {other} |")
        (RESULTS_DIR / "results.md").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def fault_results():
    recorder = FaultRecorder()
    yield recorder
    if recorder.rows:
        recorder.write()
