"""The Redis broker's transport (`leaddesk.worker.redis_broker`), against the machine's Redis
through a loopback proxy: a worker that meets an outage in the middle of a task takes work again
once Redis is back, and a rediss:// broker talks TLS and verifies the server's certificate.

In the outage the task ends while Redis is away, so its acknowledgement fails; kombu's own Redis
transport then keeps counting that message as in hand, and a worker with a prefetch of one never
asks Redis for work again. The proxy is cut and restored (the real server keeps running), and a
real Celery worker consumes with the product's configuration."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from kombu.exceptions import OperationalError

from leaddesk.worker.celery_app import make_celery
from tests.fakes.tcp_proxy import TcpProxy
from tests.webhooks.support import make_settings

REDIS = ("127.0.0.1", 6379)
REDIS_DB = 11


def _needs_redis() -> None:
    try:
        socket.create_connection(REDIS, timeout=1).close()
    except OSError:
        pytest.skip("Redis is not reachable on 127.0.0.1:6379")


@pytest.fixture
def redis_proxy() -> Iterator[TcpProxy]:
    _needs_redis()
    proxy = TcpProxy(REDIS).start()
    try:
        yield proxy
    finally:
        proxy.stop()
        redis.Redis(*REDIS, db=REDIS_DB).flushdb()


def test_a_worker_whose_acknowledgement_failed_in_an_outage_takes_work_again_after_it(
    tmp_path: Path, redis_proxy: TcpProxy
) -> None:
    settings = make_settings(
        database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
        broker_url=f"redis://127.0.0.1:{redis_proxy.port}/{REDIS_DB}",
        broker_queue=f"outage-{uuid.uuid4().hex[:8]}",
    )
    app = make_celery(settings)
    started, finish = threading.Event(), threading.Event()
    ran: list[int] = []

    @app.task(name="outage.job")
    def job(n: int) -> None:
        ran.append(n)
        if n == 1:
            started.set()
            finish.wait(30)

    with start_worker(app, perform_ping_check=False, shutdown_timeout=5.0):
        job.apply_async(args=[1])
        assert started.wait(30), "the worker never took the first task"
        redis_proxy.cut()
        finish.set()  # the task ends with Redis away: its acknowledgement fails
        time.sleep(1.0)
        redis_proxy.restore()

        job.apply_async(args=[2])
        deadline = time.monotonic() + 30
        while 2 not in ran and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 2 in ran, "the worker stopped taking work after the outage"

    # The first task's message was never acknowledged on Redis: it is still in the "unacked"
    # index, to be delivered again after the visibility timeout (a run is idempotent).
    assert ran.count(1) == 1
    assert redis.Redis(*REDIS, db=REDIS_DB).hlen("unacked") == 1
    app.close()


def test_a_rediss_broker_talks_tls_and_verifies_the_server_certificate(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    _needs_redis()
    key, cert = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    proxy = TcpProxy(REDIS, tls=tls).start()
    queue = f"tls-{uuid.uuid4().hex[:8]}"
    # Two databases: kombu's producer pools are shared in a process, keyed by a URL without its
    # query, so the refused and the trusted client must not look like one.
    refused = f"rediss://127.0.0.1:{proxy.port}/{REDIS_DB - 1}"
    trusted = f"rediss://127.0.0.1:{proxy.port}/{REDIS_DB}"

    def publish(url: str) -> None:
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path / 'leaddesk.db'}",
            broker_url=url,
            broker_queue=queue,
        )
        app = make_celery(settings)
        try:
            app.send_task("tls.job", args=[1], queue=queue)
        finally:
            app.close()

    try:
        # rediss:// talks TLS, and checks the server's certificate: a self-signed one is refused.
        with pytest.raises(OperationalError, match="CERTIFICATE_VERIFY_FAILED"):
            publish(refused)
        # Told which authority signed it, the client trusts it: the task is on the queue.
        publish(f"{trusted}?ssl_cert_reqs=required&ssl_ca_certs={cert}")
        assert redis.Redis(*REDIS, db=REDIS_DB).llen(queue) == 1
    finally:
        proxy.stop()
        redis.Redis(*REDIS, db=REDIS_DB).flushdb()
