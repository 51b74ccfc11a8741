"""QoS classes, checked against Kubernetes' rules and its own test table
(pkg/apis/core/v1/helper/qos/qos_test.go), with quantities as numbers."""
import pytest

from minipod.runtime.api.qos import BEST_EFFORT, BURSTABLE, GUARANTEED, pod_qos, with_defaults

Mi = 1 << 20


def c(req=None, lim=None):
    return (req, lim)


@pytest.mark.parametrize("containers, expected", [
    # nothing set anywhere
    ([c()], BEST_EFFORT),
    ([c(), c()], BEST_EFFORT),
    # zero is the same as unset; other resources do not count
    ([c({"cpu": 0, "memory": 0})], BEST_EFFORT),
    ([c({"ephemeral-storage": 1 << 30}, {"nvidia.com/gpu": 1})], BEST_EFFORT),
    # requests equal to limits, cpu and memory, every container
    ([c({"cpu": 100, "memory": 100 * Mi}, {"cpu": 100, "memory": 100 * Mi})], GUARANTEED),
    ([c({"cpu": 100, "memory": 100 * Mi}, {"cpu": 100, "memory": 100 * Mi}),
      c({"cpu": 200, "memory": 50 * Mi}, {"cpu": 200, "memory": 50 * Mi})], GUARANTEED),
    # limits only: requests default to the limits
    ([c(None, {"cpu": 500, "memory": 64 * Mi})], GUARANTEED),
    # one container without limits breaks Guaranteed
    ([c(None, {"cpu": 500, "memory": 64 * Mi}), c()], BURSTABLE),
    # memory limit only
    ([c(None, {"memory": 64 * Mi})], BURSTABLE),
    # request below the limit
    ([c({"cpu": 100, "memory": 64 * Mi}, {"cpu": 200, "memory": 64 * Mi})], BURSTABLE),
    # a request alone
    ([c({"cpu": 100})], BURSTABLE),
    # init containers count like the others
    ([c({"cpu": 100, "memory": Mi}, {"cpu": 100, "memory": Mi}), c({"cpu": 50})], BURSTABLE),
    # an extension resource beside cpu and memory does not change the class
    ([c({"cpu": 100, "memory": Mi, "hugepages-2Mi": 2 * Mi},
        {"cpu": 100, "memory": Mi, "hugepages-2Mi": 2 * Mi})], GUARANTEED),
])
def test_pod_qos(containers, expected):
    assert pod_qos(containers) == expected


def test_defaulting_keeps_explicit_requests():
    assert with_defaults({"cpu": 100}, {"cpu": 200, "memory": 5}) == {"cpu": 100, "memory": 5}


def test_from_manifest_style_resources():
    from types import SimpleNamespace as R
    from minipod.runtime.api.qos import resources_of
    full = R(cpu_request_milli=500, cpu_limit_milli=500, memory_request=Mi, memory_limit=Mi)
    none = R(cpu_request_milli=None, cpu_limit_milli=None, memory_request=None, memory_limit=None)
    assert resources_of(full) == ({"cpu": 500, "memory": Mi}, {"cpu": 500, "memory": Mi})
    assert pod_qos([resources_of(full)]) == GUARANTEED
    assert pod_qos([resources_of(none)]) == BEST_EFFORT
    assert pod_qos([resources_of(full), resources_of(none)]) == BURSTABLE
