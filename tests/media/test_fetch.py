"""SafeFetcher and forbidden_reason: internal addresses refused in every spelling, at every hop.

Nothing here sends traffic beyond loopback: address rules are checked on `forbidden_reason`
itself, and every fetcher runs over the LoopbackOnly transport.
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.media.conftest import (
    JPEG,
    PNG,
    WEBP,
    FakeDNS,
    LoopbackOnly,
    MakeFetcher,
    Server,
    allow_alt_only,
    make_certificate,
    serve,
)
from tests.support.servers import free_port
from veo_gateway.media.fetch import (
    ALLOW_PRIVATE_IMAGES,
    ALLOW_PRIVATE_WEBHOOKS,
    FetchLimits,
    FetchRefused,
    client_url_policy,
    forbidden_reason,
    resolve_checked,
)
from veo_gateway.settings import env_name

ALLOW = FetchLimits(allow_private=True)


def refused(reason: str, *, whole: bool = False) -> pytest.RaisesExc[FetchRefused]:
    """Expect FetchRefused whose message contains (or, `whole`, is) `reason`, literally."""
    pattern = re.escape(reason)
    return pytest.raises(FetchRefused, match=f"^{pattern}$" if whole else pattern)


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# --- forbidden_reason ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # CGNAT
        ("100.127.255.254", "private"),
        ("fd00::1", "private"),
        ("fc00::1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fec0::1", "site-local"),
        ("192.0.2.1", "not globally routable"),  # documentation
        ("198.18.0.1", "not globally routable"),  # benchmarking
        ("0.1.2.3", "not globally routable"),
        ("2001:db8::1", "not globally routable"),
        # IPv6 spellings of IPv4 hosts are judged by the IPv4 host they reach.
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("::127.0.0.1", "loopback"),  # IPv4-compatible
        ("::ffff:0:7f00:1", "loopback"),  # SIIT IPv4-translated
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo, client 10.0.0.1
        ("2001:0:4136:e378:8000:63bf:f7f6:f7f7", "not globally routable"),  # Teredo, public
    ],
)
def test_forbidden_addresses(address: str, reason: str) -> None:
    assert forbidden_reason(ip(address)) == reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above
        "172.32.0.1",  # just past 172.16/12
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",  # NAT64 (DNS64 networks) of a public host
        "2002:808:808::1",  # 6to4 of a public host
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert forbidden_reason(ip(address)) is None


ipv4s = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@given(ipv4s)
def test_ipv6_wrappers_are_judged_by_their_ipv4(address: ipaddress.IPv4Address) -> None:
    expected = forbidden_reason(address)
    assert forbidden_reason(ip(f"::ffff:{address}")) == expected
    assert forbidden_reason(ip(f"64:ff9b::{address}")) == expected


@given(
    st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]),
    st.integers(0, 2**24 - 1),
)
def test_every_private_address_is_private(network: str, offset: int) -> None:
    net = ipaddress.ip_network(network)
    address = net[offset % net.num_addresses]
    if address == ipaddress.ip_address("100.100.100.200"):
        assert forbidden_reason(address) == "cloud metadata"
    else:
        assert forbidden_reason(address) == "private"


@given(st.integers(0, 2**24 - 1))
def test_every_loopback_address_is_loopback(offset: int) -> None:
    assert forbidden_reason(ipaddress.IPv4Address("127.0.0.0") + offset) == "loopback"


# --- refused by default, in every spelling, before any connection ----------------------------


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("http://127.0.0.1:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://localhost:{port}/img.png", "is loopback"),
        ("HTTP://LOCALHOST:{port}/img.png", "is loopback"),
        ("http://2130706433:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://0x7f000001:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://017700000001:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://127.1:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://[0:0:0:0:0:ffff:7f00:1]:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://[::1]:{port}/img.png", "address ::1 is loopback"),
        ("http://0.0.0.0:{port}/img.png", "address 0.0.0.0 is unspecified"),
        ("http://[::]:{port}/img.png", "address :: is unspecified"),
    ],
)
async def test_loopback_spellings_refused(
    make_fetcher: MakeFetcher, server: Server, template: str, reason: str
) -> None:
    transport = LoopbackOnly()
    fetcher = make_fetcher(transport=transport)
    with refused(reason):
        await fetcher.fetch(template.format(port=server.port))
    assert transport.seen == [] and server.hits == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "address 169.254.169.254 is cloud metadata"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata"),
        ("http://10.0.0.1/a.png", "address 10.0.0.1 is private"),
        ("http://192.168.1.1/a.png", "private"),
        ("http://[fe80::1]/a.png", "link-local"),
        ("ftp://127.0.0.1/a.png", "scheme 'ftp' is not allowed"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("http://user:pw@127.0.0.1/a.png", "user name or password"),
        ("http://user@8.8.8.8/a.png", "user name or password"),
        ("http:///a.png", "no host"),
        ("http://[::1/a.png", "invalid URL"),
    ],
)
async def test_refused_without_connecting(make_fetcher: MakeFetcher, url: str, reason: str) -> None:
    transport = LoopbackOnly()
    with refused(reason):
        await make_fetcher(transport=transport).fetch(url)
    assert transport.seen == []


async def test_metadata_refused_even_when_private_is_allowed(make_fetcher: MakeFetcher) -> None:
    fetcher = make_fetcher(ALLOW)
    for url in (
        "http://169.254.169.254/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
    ):
        with refused("cloud metadata"):
            await fetcher.fetch(url)


async def test_a_refusal_names_the_setting_that_would_allow_it(
    make_fetcher: MakeFetcher, server: Server
) -> None:
    hint = f"(set {ALLOW_PRIVATE_IMAGES}=true to allow private, loopback and link-local addresses)"
    assert env_name("allow_private_image_urls") == ALLOW_PRIVATE_IMAGES
    fetcher = make_fetcher()
    with refused(f"address 127.0.0.1 is loopback {hint}", whole=True):
        await fetcher.fetch(f"http://127.0.0.1:{server.port}/img.png")
    with refused(f"address 10.0.0.1 is private {hint}", whole=True):
        await fetcher.fetch("http://10.0.0.1/a.png")
    # The setting never opens the metadata service: no hint there, with it or without.
    for limits in (FetchLimits(), ALLOW):
        with refused("address 169.254.169.254 is cloud metadata", whole=True):
            await make_fetcher(limits).fetch("http://169.254.169.254/")


async def test_a_webhook_refusal_names_its_own_setting() -> None:
    assert env_name("allow_private_webhook_urls") == ALLOW_PRIVATE_WEBHOOKS
    with pytest.raises(FetchRefused, match=f"set {ALLOW_PRIVATE_WEBHOOKS}=true"):
        await resolve_checked(
            "127.0.0.1", 80, client_url_policy(False), allowed_by=ALLOW_PRIVATE_WEBHOOKS
        )


# --- redirects re-checked at every hop (127.0.0.2 stands in for a public host) ---------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://127.0.0.1:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://localhost:{port}/img.png", "is loopback"),
        ("http://2130706433:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://0x7f000001:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/img.png", "address 127.0.0.1 is loopback"),
        ("http://[::1]:{port}/img.png", "address ::1 is loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("ftp://127.0.0.2:{port}/img.png", "scheme 'ftp' is not allowed"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        ("http://user@127.0.0.2:{port}/img.png", "user name or password"),
    ],
)
async def test_redirect_to_forbidden_target_refused(
    make_fetcher: MakeFetcher, alt_server: Server, server: Server, target: str, reason: str
) -> None:
    transport = LoopbackOnly()
    fetcher = make_fetcher(policy=allow_alt_only, transport=transport)
    first = httpx.URL(f"{alt_server.url}/to", params={"u": target.format(port=server.port)})
    with refused(reason):
        await fetcher.fetch(str(first))
    assert len(alt_server.hits) == 1  # the allowed first hop was made...
    assert server.hits == []  # ...and the forbidden second one never was
    assert [host for host, _ in transport.seen] == ["127.0.0.2"]


async def test_redirects_within_allowed_hosts_are_followed(
    make_fetcher: MakeFetcher, alt_server: Server
) -> None:
    fetcher = make_fetcher(policy=allow_alt_only)
    assert await fetcher.fetch(f"{alt_server.url}/redirect/3") == PNG
    assert alt_server.hits == ["/redirect/3", "/redirect/2", "/redirect/1", "/redirect/0"]


async def test_allowed_host_itself_refused_by_default(
    make_fetcher: MakeFetcher, alt_server: Server
) -> None:
    with refused("address 127.0.0.2 is loopback"):
        await make_fetcher().fetch(f"{alt_server.url}/img.png")
    assert alt_server.hits == []


# --- resolution: every answer judged, one lookup, the checked address connected --------------


async def test_any_forbidden_answer_refuses_the_name(
    make_fetcher: MakeFetcher, alt_server: Server, fake_dns: FakeDNS
) -> None:
    fake_dns.answers["mixed.test"] = [["127.0.0.2", "127.0.0.1"]]
    fetcher = make_fetcher(policy=allow_alt_only)
    with refused("address 127.0.0.1 is loopback"):
        await fetcher.fetch(f"http://mixed.test:{alt_server.port}/img.png")
    assert alt_server.hits == []


async def test_public_and_private_answers_refused(
    make_fetcher: MakeFetcher, fake_dns: FakeDNS
) -> None:
    fake_dns.answers["split.test"] = [["93.184.216.34", "10.0.0.1"]]
    with refused("address 10.0.0.1 is private"):
        await make_fetcher().fetch("http://split.test/img.png")


async def test_connects_to_the_checked_address_not_a_new_lookup(
    make_fetcher: MakeFetcher, alt_server: Server, fake_dns: FakeDNS
) -> None:
    # A rebinding name: the first answer passes the check, later ones point inside.
    fake_dns.answers["rebind.test"] = [["127.0.0.2"], ["127.0.0.1"]]
    transport = LoopbackOnly()
    fetcher = make_fetcher(policy=allow_alt_only, transport=transport)
    body = await fetcher.fetch(f"http://rebind.test:{alt_server.port}/host")
    assert body == f"rebind.test:{alt_server.port}".encode()  # the original Host header
    assert fake_dns.calls == ["rebind.test"]
    assert transport.seen == [("127.0.0.2", f"rebind.test:{alt_server.port}")]


async def test_next_address_tried_when_one_does_not_answer(
    make_fetcher: MakeFetcher, server: Server, fake_dns: FakeDNS
) -> None:
    fake_dns.answers["two.test"] = [["127.0.0.3", "127.0.0.1"]]  # nothing listens on .3
    transport = LoopbackOnly()
    fetcher = make_fetcher(ALLOW, transport=transport)
    assert await fetcher.fetch(f"http://two.test:{server.port}/img.png") == PNG
    assert [host for host, _ in transport.seen] == ["127.0.0.3", "127.0.0.1"]


async def test_unresolvable_name(make_fetcher: MakeFetcher, fake_dns: FakeDNS) -> None:
    fake_dns.answers["nowhere.test"] = [[]]
    with refused("host 'nowhere.test' could not be resolved"):
        await make_fetcher().fetch("http://nowhere.test/img.png")


async def test_nothing_listening(make_fetcher: MakeFetcher) -> None:
    with refused("could not connect to 127.0.0.1"):
        await make_fetcher(ALLOW).fetch(f"http://127.0.0.1:{free_port()}/img.png")


# --- downloads with allow_private ------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "http://127.0.0.1:{port}/img.png",
        "http://localhost:{port}/img.png",
        "http://2130706433:{port}/img.png",
        "http://0x7f000001:{port}/img.png",
        "http://017700000001:{port}/img.png",
        "http://127.1:{port}/img.png",
        "http://[::ffff:127.0.0.1]:{port}/img.png",
    ],
)
async def test_loopback_spellings_download_when_allowed(
    make_fetcher: MakeFetcher, server: Server, template: str
) -> None:
    transport = LoopbackOnly()
    fetcher = make_fetcher(ALLOW, transport=transport)
    assert await fetcher.fetch(template.format(port=server.port)) == PNG
    # Only ever an IP literal on the wire side, with the client's own host in the Host header.
    assert [host for host, _ in transport.seen][-1] == "127.0.0.1"
    original = httpx.URL(template.format(port=server.port)).netloc.decode()
    assert transport.seen[-1][1] == original


async def test_ipv6_loopback_downloads_when_allowed(
    make_fetcher: MakeFetcher, server6: Server
) -> None:
    assert await make_fetcher(ALLOW).fetch(f"{server6.url}/img.webp") == WEBP


@pytest.mark.parametrize(
    ("path", "body"), [("img.png", PNG), ("img.jpg", JPEG), ("img.webp", WEBP)]
)
async def test_images_download(
    make_fetcher: MakeFetcher, server: Server, path: str, body: bytes
) -> None:
    assert await make_fetcher(ALLOW).fetch(f"{server.url}/{path}") == body


async def test_original_host_header_is_sent(make_fetcher: MakeFetcher, server: Server) -> None:
    body = await make_fetcher(ALLOW).fetch(f"http://localhost:{server.port}/host")
    assert body == f"localhost:{server.port}".encode()


async def test_redirects_up_to_the_cap(make_fetcher: MakeFetcher, server: Server) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True, max_redirects=3))
    assert await fetcher.fetch(f"{server.url}/redirect/3") == PNG
    with refused("too many redirects (more than 3)", whole=True):
        await fetcher.fetch(f"{server.url}/redirect/4")
    no_redirects = make_fetcher(FetchLimits(allow_private=True, max_redirects=0))
    with refused("too many redirects"):
        await no_redirects.fetch(f"{server.url}/redirect/1")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("status/404", "HTTP 404"),
        ("status/500", "HTTP 500"),
        ("status/304", "HTTP 304"),
        ("no-location", "HTTP 302"),
        ("nothing-here", "HTTP 404"),
    ],
)
async def test_non_2xx_refused(
    make_fetcher: MakeFetcher, server: Server, path: str, reason: str
) -> None:
    with refused(reason, whole=True):
        await make_fetcher(ALLOW).fetch(f"{server.url}/{path}")


async def test_any_2xx_is_a_success(make_fetcher: MakeFetcher, server: Server) -> None:
    assert await make_fetcher(ALLOW).fetch(f"{server.url}/status/203") == b"nope"


async def test_size_cap(make_fetcher: MakeFetcher, server: Server) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True, max_bytes=1000))
    assert await fetcher.fetch(f"{server.url}/bytes/1000") == b"x" * 1000
    with refused("larger than 1,000 bytes", whole=True):
        await fetcher.fetch(f"{server.url}/bytes/1001")


async def test_declared_length_refused_before_reading(
    make_fetcher: MakeFetcher, server: Server
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True, max_bytes=1024 * 1024))
    with refused("larger than 1 MB", whole=True):
        await fetcher.fetch(f"{server.url}/declared-huge")


async def test_undeclared_length_cut_off_while_streaming(
    make_fetcher: MakeFetcher, server: Server
) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True, max_bytes=1024 * 1024))
    with refused("larger than 1 MB", whole=True):
        await fetcher.fetch(f"{server.url}/stream-huge")


async def test_slow_body_times_out(make_fetcher: MakeFetcher, server: Server) -> None:
    fetcher = make_fetcher(FetchLimits(allow_private=True, timeout=0.5))
    started = time.monotonic()
    with refused("timed out after 0.5 s", whole=True):
        await fetcher.fetch(f"{server.url}/slow")
    assert time.monotonic() - started < 2.5


async def test_timeout_covers_all_redirects(make_fetcher: MakeFetcher, server: Server) -> None:
    # Each hop answers in 0.3 s, under the timeout; together they are not.
    fetcher = make_fetcher(FetchLimits(allow_private=True, timeout=0.8))
    with refused("timed out after 0.8 s"):
        await fetcher.fetch(f"{server.url}/slow-hop/3")


# --- TLS: the connection goes to the IP, the certificate is checked for the name -------------


async def test_https_checks_the_certificate_against_the_hostname(
    make_fetcher: MakeFetcher, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path, "localhost")  # no IP address in it
    with serve("127.0.0.1", tls=certificate.server) as tls_server:
        transport = LoopbackOnly(httpx.AsyncHTTPTransport(verify=certificate.client))
        fetcher = make_fetcher(ALLOW, transport=transport)
        assert await fetcher.fetch(f"https://localhost:{tls_server.port}/img.png") == PNG
        assert transport.seen == [("127.0.0.1", f"localhost:{tls_server.port}")]
        # The same server by IP: the certificate does not name 127.0.0.1, so it is refused,
        # which shows the check is on (and that it was the name that passed above).
        with pytest.raises(FetchRefused, match=r"^(request failed|could not connect)"):
            await fetcher.fetch(f"https://127.0.0.1:{tls_server.port}/img.png")


async def test_https_refuses_a_certificate_for_another_name(
    make_fetcher: MakeFetcher, tmp_path: Path
) -> None:
    certificate = make_certificate(tmp_path, "elsewhere.test")
    with serve("127.0.0.1", tls=certificate.server) as tls_server:
        transport = LoopbackOnly(httpx.AsyncHTTPTransport(verify=certificate.client))
        fetcher = make_fetcher(ALLOW, transport=transport)
        with pytest.raises(FetchRefused, match=r"^(request failed|could not connect)"):
            await fetcher.fetch(f"https://localhost:{tls_server.port}/img.png")
