"""moto's AWS server on 127.0.0.1, which a test can stop and start again on the same port.

moto keeps its state in the process, so a server started again on the same
port answers with the same buckets, objects and open multipart uploads: what
an S3 endpoint that went down and came back looks like to a client.
"""

from __future__ import annotations

import urllib.request
from typing import Any

AWS_KEY_ID = "AKIAEMPIREOPSTEST002"
AWS_SECRET = "empire-ops-backup-test-secret-key-0002"


class MotoServer:
    """A ThreadedMotoServer whose ``stop`` also closes the socket (connections are refused)."""

    def __init__(self) -> None:
        self.port = 0
        self._server: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket: the endpoint is gone, not slow."""
        if self._server is None:
            return
        self._server.stop()
        self._server._server.server_close()
        self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def reset(self) -> None:
        """Forget every bucket, object, upload and key (moto's whole state)."""
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        ).read()

    def client(self, service: str = "s3") -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=AWS_KEY_ID,
            aws_secret_access_key=AWS_SECRET,
        )
