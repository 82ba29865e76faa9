"""Fetching revocation data over HTTP: OCSP POSTs and CRL GETs (the I/O shell, httpx).

Every request has a total deadline and a response size limit (the body is streamed and cut
off past the limit); redirects are not followed, proxies from the environment are not used,
and only ``http``/``https`` URLs are fetched (an ``ldap://`` distribution point is reported,
not fetched). Any failure — refused connection, timeout, HTTP status other than 200, a body
over the limit — is a :class:`FetchError` whose message names the URL and what went wrong.
The validator fetches only URLs of chains that already verified against a trust bundle (or
configured by policy), so a caller cannot make the service fetch arbitrary URLs.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Protocol

import httpx

OCSP_REQUEST_TYPE = "application/ocsp-request"


class FetchError(Exception):
    """A revocation source could not be read; the message says which and why."""


class Fetcher(Protocol):
    """What the validator needs from the network (``HttpFetcher`` is the real one)."""

    async def post_ocsp(self, url: str, request: bytes) -> bytes:
        """The body of the responder's answer to the DER OCSP ``request``."""
        ...

    async def get_crl(self, url: str) -> bytes:
        """The body (PEM or DER CRL) served at ``url``."""
        ...


def check_fetchable(url: str) -> None:
    """``FetchError`` unless ``url`` is an ``http``/``https`` URL with a host, a valid port
    and only printable ASCII (distribution points come from certificates: anything goes)."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise FetchError(f"{url!r}: not a URL (spaces, control or non-ASCII characters)")
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port  # ValueError for a port out of range or not a number
    except ValueError as err:
        raise FetchError(f"{url!r}: not a valid URL ({err})") from None
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{url}: unsupported URL scheme {parts.scheme or '(none)'!r}")
    if not parts.hostname:
        raise FetchError(f"{url}: the URL has no host")


class HttpFetcher:
    """:class:`Fetcher` over httpx, one connection pool; ``aclose()`` when done."""

    def __init__(
        self,
        *,
        timeout_s: float = 2.0,
        max_ocsp_bytes: int = 64 * 1024,
        max_crl_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.timeout_s = timeout_s
        self.max_ocsp_bytes = max_ocsp_bytes
        self.max_crl_bytes = max_crl_bytes
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "x0tta6bl4-identity-validator"},
        )

    async def post_ocsp(self, url: str, request: bytes) -> bytes:
        return await self._fetch(
            "POST",
            url,
            content=request,
            headers={"Content-Type": OCSP_REQUEST_TYPE},
            limit=self.max_ocsp_bytes,
        )

    async def get_crl(self, url: str) -> bytes:
        return await self._fetch("GET", url, content=None, headers={}, limit=self.max_crl_bytes)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch(
        self, method: str, url: str, *, content: bytes | None, headers: dict[str, str], limit: int
    ) -> bytes:
        check_fetchable(url)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._read(method, url, content, headers, limit)
        except TimeoutError:
            raise FetchError(f"{url}: no answer within {self.timeout_s:g}s (timeout)") from None
        except httpx.TimeoutException:
            raise FetchError(f"{url}: no answer within {self.timeout_s:g}s (timeout)") from None
        except httpx.ConnectError as err:
            raise FetchError(f"{url}: cannot connect ({err or type(err).__name__})") from None
        except httpx.HTTPError as err:
            raise FetchError(f"{url}: HTTP error ({err or type(err).__name__})") from None
        except (httpx.InvalidURL, ValueError, OSError) as err:  # a URL httpx will not send
            raise FetchError(f"{url!r}: cannot be fetched ({err or type(err).__name__})") from None

    async def _read(
        self, method: str, url: str, content: bytes | None, headers: dict[str, str], limit: int
    ) -> bytes:
        async with self._client.stream(method, url, content=content, headers=headers) as response:
            if response.status_code != 200:
                raise FetchError(f"{url}: HTTP status {response.status_code}")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise FetchError(f"{url}: the answer is {declared} bytes, over the {limit} limit")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    raise FetchError(f"{url}: the answer is over the {limit}-byte limit")
            return bytes(body)
