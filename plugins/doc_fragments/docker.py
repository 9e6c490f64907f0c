# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)


class ModuleDocFragment(object):
    # The container engine connection (_argspecs.DOCKER) of keel.ops.rolling_update and keel.ops.container_state.

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The Docker Engine API to talk to, for example V(unix:///var/run/docker.sock),
        V(unix:///run/podman/podman.sock) or V(tcp://10.0.0.5:2376).
      - Defaults to the E(DOCKER_HOST) environment variable, then to V(unix:///var/run/docker.sock).
    type: str
  timeout:
    description: Seconds an engine API call may take.
    type: float
    default: 60
  ca_cert:
    description: CA certificate to verify a TLS O(docker_host) with.
    type: path
  client_cert:
    description: Client certificate for a TLS O(docker_host); needs O(client_key).
    type: path
  client_key:
    description: Key of O(client_cert).
    type: path
  validate_certs:
    description: Verify the engine's TLS certificate (when one of the TLS options is given).
    type: bool
    default: true
"""

    # The container selection of keel.ops.container_state and keel.ops.container_info (_argspecs.CONTAINERS).
    CONTAINERS = r"""
options:
  names:
    description: The containers, by name. At least one.
    type: list
    elements: str
    aliases: [containers]
  labels:
    description: The containers carrying all these labels (name to value), running or not. At least one label.
    type: dict
"""
