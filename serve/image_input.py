"""Images from requests: data: URLs, bare base64, uploads and (when enabled) http(s) URLs.

Remote fetches go through an SSRF guard: the host is resolved and every address it resolves
to must be public (not loopback, private, link-local, shared, multicast, reserved or
unspecified) unless private URLs are explicitly allowed; the connection is pinned to the
checked address (Host header and TLS SNI keep the name), so a DNS answer cannot change
between check and use; redirects are followed by hand (at most 3), each hop checked again;
size and time are capped. Pixel count is checked from
the image header before any decoding.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import socket
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from kever.errors import InputError
from kever.images import LoadedImage, load_image
from kever.serve.config import ServeConfig
from kever.serve.openai_errors import APIError, bad_request, quote, too_large

MAX_REDIRECTS = 3


def decode_data_url(url: str) -> bytes:
    """``data:[<mime>][;base64],<data>`` -> bytes (400 if malformed)."""
    head, sep, payload = url.partition(",")
    if not sep or not head.lower().startswith("data:"):
        raise bad_request("malformed data: URL (expected 'data:image/...;base64,<data>')", "invalid_image_url")
    if head.lower().endswith(";base64"):
        return decode_base64(payload)
    return unquote_to_bytes(payload)


def decode_base64(text: str) -> bytes:
    text = "".join(text.split())
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("image is not valid base64", "invalid_image") from None


def _describe(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    for attr in ("is_loopback", "is_private", "is_link_local", "is_multicast", "is_reserved", "is_unspecified"):
        if getattr(addr, attr):
            return attr[3:].replace("_", "-")
    return "not public"


async def check_host(host: str, port: int, allow_private: bool) -> str:
    """Refuse (400) a host that resolves to any non-public address, unless allowed; return the
    address to connect to (the fetch is pinned to it, so DNS cannot change between check and use)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise bad_request(f"cannot resolve image host {quote(host, 80)} ({type(e).__name__})", "invalid_image_url") from None
    addrs = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        addrs.append(addr)
        if allow_private:
            continue
        if not addr.is_global or addr.is_multicast:
            raise APIError(400, f"refusing to fetch image from {quote(host, 80)}: it resolves to {addr} ({_describe(addr)}); "
                                "only public addresses are allowed", "invalid_request_error", "image_url_forbidden")
    if not addrs:
        raise bad_request(f"cannot resolve image host {quote(host, 80)}", "invalid_image_url")
    return str(addrs[0])


async def fetch_remote(url: str, config: ServeConfig) -> bytes:
    if not config.allow_remote_images:
        raise APIError(400, "remote image URLs are disabled on this server; send the image as a data: URL "
                            "(or start it with --allow-remote-images)", "invalid_request_error", "image_url_forbidden")
    try:
        return await asyncio.wait_for(_fetch(url, config), timeout=config.fetch_timeout_s)
    except asyncio.TimeoutError:
        raise APIError(400, f"fetching the image took longer than {config.fetch_timeout_s:g} s",
                       "invalid_request_error", "image_fetch_timeout") from None


async def _fetch(url: str, config: ServeConfig) -> bytes:
    import httpx

    limit = config.max_body_bytes
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=config.fetch_timeout_s) as client:
        for _ in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise bad_request(f"unsupported image URL {quote(url)}: use http(s) or data:", "invalid_image_url")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            ip = await check_host(parts.hostname, port, config.allow_private_urls)
            pinned = parts._replace(netloc=(f"[{ip}]" if ":" in ip else ip) + f":{port}").geturl()
            headers = {"Host": parts.netloc.rsplit("@", 1)[-1]}
            try:
                async with client.stream("GET", pinned, headers=headers,
                                         extensions={"sni_hostname": parts.hostname}) as resp:
                    if resp.is_redirect:
                        url = urljoin(url, resp.headers.get("location", ""))
                        continue
                    if resp.status_code != 200:
                        raise bad_request(f"fetching the image failed: HTTP {resp.status_code}", "image_fetch_failed")
                    declared = resp.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise too_large(f"remote image is {int(declared):,} bytes, above the limit of {limit:,}", "image_too_large")
                    buf = bytearray()
                    async for chunk in resp.aiter_bytes():
                        buf += chunk
                        if len(buf) > limit:
                            raise too_large(f"remote image is above the limit of {limit:,} bytes", "image_too_large")
                    return bytes(buf)
            except httpx.HTTPError as e:
                raise bad_request(f"fetching the image failed: {type(e).__name__}", "image_fetch_failed") from None
        raise bad_request(f"too many redirects (more than {MAX_REDIRECTS})", "image_fetch_failed")


async def image_bytes_from_url(url: str, config: ServeConfig) -> bytes:
    scheme, sep, _ = url[:32].partition(":")
    scheme = scheme.lower() if sep else ""
    if scheme == "data":
        return decode_data_url(url)
    if scheme in ("http", "https"):
        return await fetch_remote(url, config)
    if not scheme:
        raise bad_request(f"image URL {quote(url)} has no scheme: send 'data:image/...;base64,<data>' "
                          "(or an http(s) URL when the server allows it)", "invalid_image_url")
    raise bad_request(f"unsupported image URL scheme {quote(scheme)}: use data: (or http(s) when enabled)", "invalid_image_url")


def decode_image(data: bytes, config: ServeConfig, source: str) -> LoadedImage:
    """Bytes -> LoadedImage, checking size and pixel count before decoding pixels."""
    from PIL import Image

    if len(data) > config.max_body_bytes:
        raise too_large(f"image is {len(data):,} bytes, above the limit of {config.max_body_bytes:,}", "image_too_large")
    if not data:
        raise bad_request(f"{source}: empty image", "invalid_image")
    Image.MAX_IMAGE_PIXELS = None  # checked here, with a clear message
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
    except Exception:
        raise bad_request(f"{source}: not an image (unrecognised or corrupt data)", "invalid_image") from None
    if w * h > config.max_pixels:
        raise too_large(f"{source}: image is {w}x{h} = {w * h:,} pixels, above the server's limit of {config.max_pixels:,}",
                        "image_too_large")
    try:
        return load_image(data, source=source)
    except InputError as e:
        raise bad_request(str(e), "invalid_image") from None
