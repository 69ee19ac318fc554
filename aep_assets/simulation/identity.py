"""Adobe's synthetic ECID: MurmurHash3 x64 128 of the user's email, as two padded 19-digit halves."""

import mmh3

# The notebooks left-pad with the digits "0123...", not with zeros; kept for bit-compatibility.
_PADDING = ["".join(str(x) for x in range(width)) for width in range(20)]


def _pad(part: int) -> str:
    s = str(abs(part))  # at most 19 digits: |int64| <= 2**63
    return _PADDING[19 - len(s)] + s


def ecid(email: str) -> str:
    high, low = mmh3.hash64(email, seed=0, x64arch=True, signed=True)
    return _pad(high) + _pad(low)


def synthetic_email(index: int) -> str:
    return f"synthetic-user-{index}@adobe.com"
