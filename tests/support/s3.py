"""A real S3-compatible server for tests: moto's standalone server
(``moto_server``, from moto[server] on PyPI) in a child process on a free
loopback port. ``S3Server().start()``, ``.url``, ``.settings(bucket)`` (a
``media.s3`` block pointing at it), ``.stop()``.

A child process, not moto's in-process ``ThreadedMotoServer``: the test process
is monkey-patched by eventlet, and the server is meant to be a separate HTTP
server that boto3 reaches over a socket, as it would MinIO. Nothing is mocked:
the object store under test speaks the S3 protocol to it.
"""

import os
import signal
import subprocess
import sys
import time

import requests

from tests.support.smtp import free_port


def plain_http_botocore():
    """Let boto3 run in the test process, which eventlet monkey-patched after
    ``ssl`` was already imported (by pytest plugins): botocore builds an SSL
    context for every client, even for an http:// endpoint, and setting its
    options then recurses forever in eventlet's green SSLContext. The test
    server speaks plain HTTP, so no context is built. Test processes only: the
    gateway (gunicorn gthread) is not monkey-patched and is left as it is."""
    from botocore import httpsession

    def no_ssl_context(self):
        return None

    httpsession.URLLib3Session._get_ssl_context = no_ssl_context


ACCESS_KEY_ID = "agora-test"
SECRET_ACCESS_KEY = "agora-test-secret"


class S3Server:
    def __init__(self, host="127.0.0.1", port=None):
        self.host = host
        self.port = port or free_port(host)
        self.process = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self, timeout=30.0):
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID}
        env["AWS_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode}")
            try:
                # moto's own health route; any answer means it serves.
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return self
            except requests.RequestException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer on {self.url}") from None
                time.sleep(0.1)

    def settings(self, bucket, **overrides):
        """A ``media.s3`` settings block for this server."""
        return {
            "endpoint_url": self.url,
            "bucket": bucket,
            "region": "us-east-1",
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "public_url": "",
            "create_bucket": True,
            "timeout": 5.0,
            **overrides,
        }

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
