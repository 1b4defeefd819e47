"""The scaled-out deployment's shape: the chaos test (tests/chaos) runs it, deploy/compose.yaml
deploys it, and tests/test_deploy.py checks that the two agree."""

from __future__ import annotations

# The arguments of each role's `veo-gateway` command.
API_ARGS = ("serve", "--no-worker")
WORKER_ARGS = ("worker",)
API_REPLICAS = 2
# The chaos test runs two workers, so that one takes over the tasks of another it sees killed;
# the deployment starts one and may be scaled up to as many.
WORKERS = 2
