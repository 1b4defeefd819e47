"""`python -m veo_gateway` is the `veo-gateway` command."""

from veo_gateway.cli import main

main()
