"""The identity service's certificate validator: a chain's trust, X.509-SVID profile, OCSP,
CRLs and pins under a named policy, with every check in the verdict.

Pure parts: :mod:`.verdict`, :mod:`.policy`, :mod:`.parse`, :mod:`.profile`, :mod:`.chain`,
:mod:`.pins`, :mod:`.revocation`. The shell: :mod:`.fetch` (HTTP), :mod:`.revocation_checker`
(fetching and caching around the revocation decisions) and :mod:`.validator`
(:class:`CertificateValidator`, what the servicer calls).
"""

from x0tta6bl4.identity.validation.fetch import Fetcher, FetchError, HttpFetcher
from x0tta6bl4.identity.validation.policy import (
    DEFAULT_POLICY,
    PolicyFieldError,
    ValidationPolicy,
    parse_policies,
    parse_policy,
)
from x0tta6bl4.identity.validation.validator import (
    CertificateValidator,
    InvalidValidationRequest,
)
from x0tta6bl4.identity.validation.verdict import Check, CheckResult, Verdict

__all__ = [
    "DEFAULT_POLICY",
    "CertificateValidator",
    "Check",
    "CheckResult",
    "FetchError",
    "Fetcher",
    "HttpFetcher",
    "InvalidValidationRequest",
    "PolicyFieldError",
    "ValidationPolicy",
    "Verdict",
    "parse_policies",
    "parse_policy",
]
