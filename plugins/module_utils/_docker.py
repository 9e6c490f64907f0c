# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way keel.ops opens a Docker API client (Docker, or Podman's Docker-compatible service): the SDK's
presence checked with a message that says how to install it, TLS options, and the API version negotiated
with a single /_ping. The rolling update's engine (_rollout/docker.py) and Redis's container hook
(_redis/hooks.py) both use it; the SDK is imported only by what needs it."""

import contextlib
import os
import warnings

from ansible_collections.keel.ops.plugins.module_utils._errors import (
    ConfigError,
    DependencyError,
    EngineError,
    first_line,
)

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # urllib3's SOCKS DependencyWarning: no proxy is used here
        import docker
        from docker.errors import DockerException, NotFound
        from requests.exceptions import RequestException  # the Docker SDK's HTTP library
    HAS_DOCKER = True
except ImportError:
    docker = None
    HAS_DOCKER = False

    class DockerException(Exception):
        """Stands in for the SDK's exceptions, so except clauses stay valid without it (require_docker() says
        how to install it before any call could raise one)."""

    class NotFound(DockerException):
        pass

    class RequestException(Exception):
        pass

# What a Docker API call can raise (the SDK's own errors and its HTTP library's transport errors, or their stand-ins):
# the rollout engine catches them by name, the Redis hook through api_errors().
__all__ = ["DockerException", "NotFound", "RequestException", "HAS_DOCKER", "require_docker", "tls_config",
           "open_client", "api_errors"]

PROBE_API_VERSION = "1.24"  # the oldest the SDK speaks; only used for the unversioned /_ping


@contextlib.contextmanager
def api_errors(translate):
    """Docker API calls inside; what they raise (the SDK's errors, its HTTP library's) leaves as translate(error),
    a KeelError that says what could not be done."""
    try:
        yield
    except (DockerException, RequestException) as error:
        raise translate(error) from None


def require_docker(purpose="the rolling update"):
    if not HAS_DOCKER:
        raise DependencyError("%s needs the Docker SDK for Python on the host that runs the module "
                              "(pip install 'docker>=7'); it talks to Docker or to Podman's Docker-compatible API"
                              % purpose)


def tls_config(ca_cert=None, client_cert=None, client_key=None, validate_certs=True):
    """A docker.tls.TLSConfig for a tcp docker_host, or None when no TLS option is given."""
    if not (ca_cert or client_cert or client_key):
        return None
    if bool(client_cert) != bool(client_key):
        raise ConfigError("client_cert and client_key go together: give both or neither")
    require_docker()
    for option, path in (("ca_cert", ca_cert), ("client_cert", client_cert), ("client_key", client_key)):
        if path and not os.path.isfile(path):
            raise ConfigError("%s: %s is not a file on the host that runs the module; give the path of a PEM file "
                              "there" % (option, path))
    try:
        return docker.tls.TLSConfig(client_cert=(client_cert, client_key) if client_cert else None,
                                    ca_cert=ca_cert, verify=ca_cert if validate_certs and ca_cert else validate_certs)
    except DockerException as error:
        raise ConfigError("the TLS options (ca_cert, client_cert, client_key) were refused: %s" % first_line(error))


def open_client(docker_host, timeout=60, tls=None, purpose="this task"):
    """A docker.DockerClient and whether the engine is Podman. The API version is negotiated with one /_ping
    (whose headers also tell Podman from Docker) rather than the SDK's version='auto', which asks /version:
    Podman answers that by running conmon and the OCI runtime, a third of a second per call."""
    require_docker(purpose)
    try:
        ping = docker.DockerClient(base_url=docker_host, version=PROBE_API_VERSION, timeout=timeout, tls=tls or False)
        try:
            response = ping.api.get(ping.api.base_url + "/_ping", timeout=timeout)
            response.raise_for_status()
        finally:
            ping.close()
        headers = response.headers
        client = docker.DockerClient(base_url=docker_host, version=headers.get("Api-Version") or "auto",
                                     timeout=timeout, tls=tls or False)
    except (DockerException, RequestException) as error:
        raise EngineError("cannot reach the container engine at %s: %s; check docker_host and that the "
                          "Docker daemon or 'podman system service' runs there"
                          % (docker_host, first_line(error)))
    return client, "Libpod-Api-Version" in headers or "libpod" in headers.get("Server", "").lower()
