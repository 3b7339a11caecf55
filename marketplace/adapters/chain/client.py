"""A small typed wrapper around web3: deploy, transact (signed locally), call, decode events.

Reverts from calls, gas estimation and mined transactions become :class:`ContractRevert` with
the custom error decoded from every ABI the client knows. Connection errors, timeouts and
retryable HTTP answers (429, 5xx: typically a gateway in front of the node) are retried with
exponential backoff, then reported as :class:`RpcUnavailable` naming the method, the attempts and
the last error; reverted transactions are never retried, and a signed transaction is re-sent only
as the very same bytes (the node recognizes it), so a lost answer never makes a second transaction.

Chain data is anyone's: strings in return values and event logs decode leniently (bytes that are not
UTF-8 become U+FFFD, :mod:`~marketplace.adapters.chain.lenient_abi`), so a CID or model name someone
wrote as raw bytes reads as text that is not a CID, never as an exception out of a read.

RPC providers put credentials in the URL (API keys in the path or query, a user and password): every
message the client makes (:class:`RpcUnavailable`, :class:`ChainIdMismatch`, the HTTP library's error
it quotes) and its ``repr`` name the endpoint with them replaced by ``***``
(:mod:`~marketplace.adapters.chain.redact`), so no caller that prints an error or the client can show
them. Only :attr:`ChainClient.rpc_url` holds the URL as given.

Event logs are read in pages (:func:`paged_logs`): no ``eth_getLogs`` request spans more than
:attr:`ChainClient.log_block_range` blocks (the constructor's ``log_block_range``, else
``MARKETPLACE_LOG_BLOCK_RANGE``, else :data:`DEFAULT_LOG_BLOCK_RANGE`), because public providers refuse
wider ranges. When the provider still answers that a range is too large (:func:`says_range_too_large`), the
range is halved and asked again, and the client keeps the smaller size for later queries. Logs that cannot
be read at all raise :class:`LogsUnavailable`, one line naming the event, the blocks and the provider's answer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import httpx
import requests
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, ProviderConnectionError, TimeExhausted, Web3RPCError
from web3.logs import DISCARD
from web3.providers.rpc.utils import check_if_retry_on_failure
from web3.types import (
    BlockData,
    BlockIdentifier,
    FilterParams,
    LogReceipt,
    RPCEndpoint,
    RPCResponse,
    TxData,
    TxParams,
    TxReceipt,
    Wei,
)

from marketplace.adapters.chain.compile import Artifact
from marketplace.adapters.chain.errors import (
    ChainError,
    ChainIdMismatch,
    NoAccount,
    RevertDecoder,
    RpcUnavailable,
    TransactionFailed,
    revert_data,
)
from marketplace.adapters.chain.lenient_abi import lenient_codec
from marketplace.adapters.chain.redact import redact_endpoint, redact_url

T = TypeVar("T")
FunctionCall = ContractFunction | ContractConstructor

#: Transport failures worth retrying (web3's HTTPProvider uses requests; httpx for completeness).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    requests.ConnectionError,
    requests.Timeout,
    httpx.TransportError,
)
#: HTTP answers worth retrying: rate limited, or the node (or a gateway in front of it) failed.
RETRYABLE_HTTP_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Never retried by the transport: :meth:`ChainClient._send_raw` retries it and checks for duplicates.
NOT_RETRIED = frozenset({"eth_sendRawTransaction"})
GAS_MARGIN = 1.2
#: Blocks per ``eth_getLogs`` request unless configured: what public providers accept.
DEFAULT_LOG_BLOCK_RANGE = 10_000
#: Environment variable setting the blocks per ``eth_getLogs`` request (a positive integer).
LOG_BLOCK_RANGE_ENV = "MARKETPLACE_LOG_BLOCK_RANGE"
#: Lowercase fragments of provider answers meaning "ask for fewer blocks" (range or result count too large):
#: "query exceeds max block range 10000", "block range is too wide", "query returned more than 10000 results",
#: "Log response size exceeded", "eth_getLogs is limited to a 10,000 range", "range too large".
RANGE_TOO_LARGE_HINTS = ("range", "too large", "too wide", "too big", "exceed", "more than", "response size")
#: Lowercase fragments of rate limiting, which a smaller range does not cure.
RATE_LIMIT_HINTS = ("rate limit", "rate-limit", "ratelimit", "too many requests", "requests per")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _GaveUp):
        exc = exc.last
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class _GaveUp(RpcUnavailable):
    """The provider's retries of one method are exhausted; ``last`` is the last transport error."""

    def __init__(self, message: str, last: BaseException) -> None:
        super().__init__(message)
        self.last = last


class _Refused(RpcUnavailable):
    """The endpoint answered with an HTTP error that retrying will not fix (e.g. 401, 404)."""


class LogsUnavailable(ChainError):
    """The provider did not give the logs asked for (it refused the request, even for a single block when the
    refusal was about the range); the message is one line naming the event, the blocks and its answer."""


class RangeTooLarge(Exception):
    """The provider refused the ``eth_getLogs`` request for blocks ``lo`` to ``hi`` because of its block range
    (or its result count): a smaller range may succeed. :func:`paged_logs` handles it."""

    def __init__(self, answer: str, lo: int, hi: int) -> None:
        super().__init__(answer)
        self.answer = answer
        self.lo = lo
        self.hi = hi


def says_range_too_large(message: str) -> bool:
    """Whether a provider's error ``message`` for ``eth_getLogs`` means that a smaller block range may succeed
    (any of :data:`RANGE_TOO_LARGE_HINTS`, and none of :data:`RATE_LIMIT_HINTS`)."""
    text = message.lower()
    if any(hint in text for hint in RATE_LIMIT_HINTS):
        return False
    return any(hint in text for hint in RANGE_TOO_LARGE_HINTS)


def paged_logs(fetch: Callable[[int, int], list[T]], start: int, end: int, size: int) -> tuple[list[T], int]:
    """Everything ``fetch(lo, hi)`` returns for consecutive inclusive block ranges covering ``[start, end]``
    exactly once, oldest first, each ``size`` blocks but the last (nothing is fetched when ``start > end``);
    and the size that worked. ValueError unless ``size >= 1``.

    When ``fetch`` raises :class:`RangeTooLarge` for a range of ``n > 1`` blocks, the size becomes
    ``ceil(n / 2)`` and the walk goes on from the same block: a refused range is asked again halved, and
    later ranges are no larger. A single block refused so re-raises it. Any other exception propagates.
    """
    if size < 1:
        raise ValueError(f"a block range has at least 1 block, got {size}")
    out: list[T] = []
    lo = start
    while lo <= end:
        hi = min(end, lo + size - 1)
        try:
            out.extend(fetch(lo, hi))
        except RangeTooLarge:
            if hi == lo:
                raise
            size = (hi - lo + 2) // 2
            continue
        lo = hi + 1
    return out, size


def log_block_range_from_env() -> int:
    """``MARKETPLACE_LOG_BLOCK_RANGE`` if set, else :data:`DEFAULT_LOG_BLOCK_RANGE`; :class:`ChainError` if it
    is not a positive integer."""
    raw = os.environ.get(LOG_BLOCK_RANGE_ENV, "").strip()
    if not raw:
        return DEFAULT_LOG_BLOCK_RANGE
    try:
        value = int(raw, 0)
    except ValueError:
        value = 0
    if value < 1:
        raise ChainError(f"{LOG_BLOCK_RANGE_ENV} must be a positive number of blocks, got {raw!r}")
    return value


class RetryingHTTPProvider(Web3.HTTPProvider):
    """web3's HTTP provider with our retry policy: transport failures and retryable HTTP statuses
    of idempotent methods (web3's allowlist) are retried ``retries - 1`` times with exponential
    backoff; then :class:`RpcUnavailable` says which method failed, how often, for how long, and
    the last error. Other HTTP errors (e.g. 401) and any other failure of the HTTP library raise
    :class:`RpcUnavailable` at once. Messages name the endpoint without its credentials."""

    def __init__(self, rpc_url: str, *, timeout: float, retries: int, backoff: float) -> None:
        super().__init__(rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None)
        self.retries = max(1, retries)
        self.backoff = backoff

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        attempts = self.retries if method not in NOT_RETRIED and check_if_retry_on_failure(method) else 1
        start = time.monotonic()
        for attempt in range(attempts):
            try:
                return super().make_request(method, params)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status not in RETRYABLE_HTTP_STATUSES:
                    raise self._refused(method, exc) from None
                last: BaseException = exc
            except TRANSIENT_ERRORS as exc:
                last = exc
            except requests.RequestException as exc:  # e.g. an invalid URL: it quotes the URL
                raise self._refused(method, exc) from None
            if attempt + 1 < attempts:
                time.sleep(self.backoff * 2**attempt)
        elapsed = time.monotonic() - start
        tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        message = f"RPC {self.endpoint_uri} unreachable: {method} failed ({tries} in {elapsed:.1f}s; last error "
        raise _GaveUp(redact_endpoint(f"{message}{_describe(last)})", self.endpoint_uri), last) from None

    def _refused(self, method: str, exc: BaseException) -> _Refused:
        message = f"RPC {self.endpoint_uri} refused {method}: {_describe(exc)}"
        return _Refused(redact_endpoint(message, self.endpoint_uri))

    def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            return super().is_connected(show_traceback)
        except RpcUnavailable as exc:
            if show_traceback:
                raise ProviderConnectionError(str(exc)) from None
            return False


class ChainClient:
    """JSON-RPC client bound to one node and (optionally) one signing account."""

    def __init__(
        self,
        rpc_url: str,
        account: LocalAccount | None = None,
        expected_chain_id: int | None = None,
        abis: Iterable[list[dict[str, Any]]] = (),
        *,
        request_timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.25,
        receipt_timeout: float = 120.0,
        poll_interval: float = 0.05,
        log_block_range: int | None = None,
    ) -> None:
        """``log_block_range``: blocks per ``eth_getLogs`` request (default :func:`log_block_range_from_env`);
        ValueError unless positive."""
        if log_block_range is not None and log_block_range < 1:
            raise ValueError(f"log_block_range must be a positive number of blocks, got {log_block_range}")
        self.rpc_url = rpc_url
        self._account = account
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self._retries = max(1, retries)
        self._backoff = backoff
        self._request_timeout = request_timeout
        self._log_range = log_block_range if log_block_range is not None else log_block_range_from_env()
        provider = RetryingHTTPProvider(rpc_url, timeout=request_timeout, retries=self._retries, backoff=backoff)
        self.w3 = Web3(provider)
        self.w3.codec = lenient_codec()  # every contract made from ``w3`` decodes strings leniently
        self.decoder = RevertDecoder(abis)
        self._chain_id: int | None = None
        self._lock = threading.Lock()
        self._next_nonce: int | None = None
        self._inflight: set[bytes] = set()
        if expected_chain_id is not None:
            actual = self.chain_id
            if actual != expected_chain_id:
                raise ChainIdMismatch(expected_chain_id, actual, rpc_url)

    # ----------------------------------------------------------------- basics
    def __repr__(self) -> str:
        who = self._account.address if self._account else "read-only"
        return f"ChainClient({redact_url(self.rpc_url)!r}, account={who})"

    __str__ = __repr__

    def with_account(self, account: LocalAccount | None) -> ChainClient:
        """A new client of the same endpoint with the same settings (timeouts, retries, the current
        :attr:`log_block_range`, known ABIs) signing as ``account`` (None: read-only); this one is unchanged."""
        other = ChainClient(
            self.rpc_url,
            account,
            request_timeout=self._request_timeout,
            retries=self._retries,
            backoff=self._backoff,
            receipt_timeout=self.receipt_timeout,
            poll_interval=self.poll_interval,
            log_block_range=self.log_block_range,
        )
        other.decoder = self.decoder
        return other

    @property
    def log_block_range(self) -> int:
        """Blocks per ``eth_getLogs`` request: as configured, or less once the provider refused that many."""
        return self._log_range

    @property
    def account(self) -> LocalAccount:
        """The signing account (raises :class:`NoAccount` for a read-only client)."""
        if self._account is None:
            raise NoAccount("this client has no signing account; configure a key or keystore")
        return self._account

    @property
    def address(self) -> str | None:
        """The signing account's address, if any."""
        return self._account.address if self._account else None

    @property
    def chain_id(self) -> int:
        """The chain id the RPC reports (cached)."""
        if self._chain_id is None:
            self._chain_id = self._rpc(lambda: int(self.w3.eth.chain_id))
        return self._chain_id

    def register_abi(self, abi: list[dict[str, Any]]) -> None:
        """Let the revert decoder know the custom errors of ``abi``."""
        self.decoder.register(abi)

    def _rpc(self, fn: Callable[[], T]) -> T:
        """Run a web3 call, translating transport failures and reverts."""
        try:
            return fn()
        except ContractLogicError as exc:
            raise self.decoder.decode(revert_data(exc)) from None
        except TRANSIENT_ERRORS as exc:  # the provider reports these itself; kept as a safety net
            raise RpcUnavailable(self._redact(f"RPC {self.rpc_url} unreachable: {_describe(exc)}")) from None

    def _redact(self, message: str) -> str:
        """``message`` without the credentials of this client's endpoint (see the module docstring)."""
        return redact_endpoint(message, self.rpc_url)

    def _request(self, method: str, params: list[Any]) -> Any:
        return self._rpc(lambda: self.w3.manager.request_blocking(RPCEndpoint(method), params))

    # ------------------------------------------------------------- contracts
    def contract(self, artifact: Artifact | list[dict[str, Any]], address: str) -> Contract:
        """A contract object at ``address`` (its ABI's errors get registered for decoding)."""
        abi = artifact.abi if isinstance(artifact, Artifact) else artifact
        self.register_abi(abi)
        return self.w3.eth.contract(address=to_checksum_address(address), abi=abi)

    def deploy(self, artifact: Artifact, *args: Any, value: int = 0, gas: int | None = None) -> Contract:
        """Deploy ``artifact`` with constructor ``args``; return the deployed contract."""
        return self.deploy_with_receipt(artifact, *args, value=value, gas=gas)[0]

    def deploy_with_receipt(
        self, artifact: Artifact, *args: Any, value: int = 0, gas: int | None = None
    ) -> tuple[Contract, TxReceipt]:
        """Deploy ``artifact`` with constructor ``args``; return the deployed contract and the receipt of its
        creation (its ``blockNumber`` is the first block the contract can have emitted logs in)."""
        if not artifact.is_deployable:
            raise ChainError(f"{artifact.name} has no bytecode (interface or abstract contract)")
        self.register_abi(artifact.abi)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self.transact(factory.constructor(*args), value=value, gas=gas)
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError(f"deploying {artifact.name} produced no contract address")
        return self.contract(artifact, address), receipt

    # ----------------------------------------------------------- transactions
    def fees(self) -> dict[str, int]:
        """EIP-1559 fee fields from the node (max fee = 2 x base fee + tip)."""
        block = self._rpc(lambda: self.w3.eth.get_block("latest"))
        base = int(block.get("baseFeePerGas", 0) or 0)
        tip = int(self._rpc(lambda: self.w3.eth.max_priority_fee))
        return {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}

    def estimate_gas(self, fn_call: FunctionCall, value: int = 0) -> int:
        """Gas estimate for ``fn_call`` from the client's account, if it has one (reverts raise
        ContractRevert). With an account, at the fees :meth:`transact` sends: a node estimates a call without fee
        fields at a zero gas price and base fee, and a dispute's gas depends on them (``MarketDisputes`` reimburses
        it at the transaction's price: at zero it skips the credit's storage write, ~22k gas)."""
        params: TxParams = {"value": Wei(value)}
        if self._account is not None:
            params["from"] = self._account.address
            params.update(self.fees())  # type: ignore[typeddict-item]
        return int(self._rpc(lambda: fn_call.estimate_gas(params)))

    @staticmethod
    def calldata(fn_call: FunctionCall) -> str:
        """The 0x-hex calldata of ``fn_call`` (selector and ABI-encoded arguments), e.g. for an unsigned
        transaction a wallet signs."""
        contract = fn_call.w3.eth.contract(abi=[fn_call.abi])
        return contract.encode_abi(fn_call.fn_name, args=list(fn_call.args), kwargs=dict(fn_call.kwargs))

    def transact(
        self, fn_call: FunctionCall, value: int = 0, gas: int | None = None, access_list: bool = False
    ) -> TxReceipt:
        """Sign and send ``fn_call`` from the client's account; wait for and return the receipt.

        Gas is estimated (+20%) unless given. Raises :class:`ContractRevert` if the estimate or
        the mined transaction reverts (never retried).

        With ``access_list`` (and no ``gas`` given), the transaction declares the accounts and storage slots it
        touches (EIP-2930, from the node's ``eth_createAccessList``) if that makes it cheaper: a declared slot costs
        1,900 gas up front and an account 2,400, where a first touch costs 2,100 and 2,600, so a call that touches
        many slots once (a batch of trainers' commits or reveals, a round's finalization) saves ~100-200 gas a slot,
        and a small one (whose contract, declared too, is warm anyway) would pay more: it is sent without. Without
        a list too when the node makes none. The list changes what the transaction pays, never what it does.
        """
        account = self.account
        declared: list[dict[str, Any]] | None = None
        if gas is None:
            estimate = self.estimate_gas(fn_call, value)
            listed = self.cheaper_access_list(fn_call, value, estimate) if access_list else None
            if listed is not None:
                declared, estimate = listed
            gas = int(estimate * GAS_MARGIN)
        params: TxParams = {
            "from": account.address,
            "value": Wei(value),
            "gas": gas,
            "chainId": self.chain_id,
            **self.fees(),  # type: ignore[typeddict-item]
        }
        if declared is not None:
            params["accessList"] = declared  # type: ignore[typeddict-item]
        with self._lock:
            nonce = self._allocate_nonce(account.address)
            params["nonce"] = nonce
            tx = self._rpc(lambda: fn_call.build_transaction(params))
            raw = account.sign_transaction(tx).raw_transaction
            tx_hash = self._send_raw(raw)
            self._next_nonce = nonce + 1
            self._inflight.add(tx_hash)
        try:
            receipt = self.wait(tx_hash)
        except RpcUnavailable as exc:
            raise RpcUnavailable(
                f"{exc}; transaction {HexBytes(tx_hash).to_0x_hex()} was sent, its receipt is not known yet"
            ) from None
        finally:
            with self._lock:
                self._inflight.discard(tx_hash)
        if receipt["status"] != 1:
            raise self.revert_reason(receipt)
        return receipt

    def cheaper_access_list(
        self, fn_call: FunctionCall, value: int, plain_gas: int
    ) -> tuple[list[dict[str, Any]], int] | None:
        """The EIP-2930 access list of ``fn_call`` sent from this client's account with ``value`` (the node's
        ``eth_createAccessList``) and the gas estimated with it, if that is less than ``plain_gas`` (the estimate
        without); None otherwise, or if the node makes no access lists."""
        tx: TxParams = {
            "from": self.account.address,
            "to": to_checksum_address(fn_call.address),
            "data": self.calldata(fn_call),
            "value": Wei(value),
        }
        try:
            made = self._rpc(lambda: self.w3.eth.create_access_list(tx))
        except Web3RPCError:  # e.g. "method not found": the transaction goes without a list
            return None
        entries = [
            {
                "address": to_checksum_address(e["address"]),
                "storageKeys": [HexBytes(k).to_0x_hex() for k in e["storageKeys"]],
            }
            for e in made["accessList"]
        ]
        with_list: TxParams = {**tx, "accessList": entries}  # type: ignore[typeddict-item]
        gas = int(self._rpc(lambda: self.w3.eth.estimate_gas(with_list)))
        return (entries, gas) if gas < plain_gas else None

    def _allocate_nonce(self, address: str) -> int:
        pending = int(self._rpc(lambda: self.w3.eth.get_transaction_count(address, "pending")))
        if self._inflight and self._next_nonce is not None:
            return max(pending, self._next_nonce)
        return pending

    def _send_raw(self, raw: bytes) -> bytes:
        """Send a signed transaction, retrying transport failures without double-sending: a retry
        re-sends the same signed bytes (same nonce, same hash), and a node that answers the retry
        with an error because it already has the transaction counts as success."""
        tx_hash = bytes(Web3.keccak(raw))
        start = time.monotonic()
        for attempt in range(self._retries):
            try:
                return bytes(self.w3.eth.send_raw_transaction(raw))
            except _Refused:
                raise
            except (RpcUnavailable, *TRANSIENT_ERRORS) as exc:
                if attempt == self._retries - 1:
                    raise RpcUnavailable(
                        self._redact(
                            f"RPC {self.rpc_url} unreachable: eth_sendRawTransaction failed ({self._retries} "
                            f"attempts in {time.monotonic() - start:.1f}s; last error {_describe(exc)}); transaction "
                            f"{HexBytes(tx_hash).to_0x_hex()} may have reached the node: look it up before sending "
                            "again"
                        )
                    ) from None
                time.sleep(self._backoff * 2**attempt)
            except Web3RPCError as exc:
                # A retry after a lost response: the node already has our transaction.
                if attempt > 0 and self._known(tx_hash):
                    return tx_hash
                raise ChainError(f"node rejected transaction: {exc.message}") from None
        return tx_hash

    def _known(self, tx_hash: bytes) -> bool:
        try:
            self.w3.eth.get_transaction(HexBytes(tx_hash))
            return True
        except Exception:
            return False

    def wait(self, tx_hash: bytes | str) -> TxReceipt:
        """Wait for a transaction's receipt (raises ChainError after ``receipt_timeout``)."""
        try:
            return self._rpc(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    HexBytes(tx_hash), timeout=self.receipt_timeout, poll_latency=self.poll_interval
                )
            )
        except TimeExhausted:
            raise ChainError(
                f"transaction {HexBytes(tx_hash).to_0x_hex()} not mined within {self.receipt_timeout}s"
            ) from None

    def revert_reason(self, receipt: TxReceipt) -> ChainError:
        """Recover the revert reason of a failed transaction by replaying it as a call: on the state
        before its block, else on the state after it (when an earlier transaction of the same block
        made it fail, e.g. someone else's, or our own sent before a restart, did the same thing first)."""
        tx_hash = HexBytes(receipt["transactionHash"]).to_0x_hex()
        try:
            tx = self.w3.eth.get_transaction(receipt["transactionHash"])
        except Exception:
            return TransactionFailed(tx_hash, receipt.get("gasUsed"))
        replay: TxParams = {"from": tx["from"], "value": tx["value"], "data": tx["input"], "gas": tx["gas"]}
        if tx.get("to"):
            replay["to"] = tx["to"]
        block = int(receipt["blockNumber"])
        for state in (max(block - 1, 0), block):
            try:
                self.w3.eth.call(replay, block_identifier=state)
            except ContractLogicError as exc:
                return self.decoder.decode(revert_data(exc), tx_hash=tx_hash)
            except Exception:
                pass
        return TransactionFailed(tx_hash, receipt.get("gasUsed"))

    # ---------------------------------------------------------------- reading
    def call(self, fn_call: ContractFunction, block_identifier: BlockIdentifier = "latest", **tx: Any) -> Any:
        """Call a view (or simulate any function) from the client's account unless ``from`` given."""
        params: dict[str, Any] = dict(tx)
        if "from" not in params and self._account is not None:
            params["from"] = self._account.address
        return self._rpc(lambda: fn_call.call(params, block_identifier=block_identifier))  # type: ignore[arg-type]

    def events(self, receipt: TxReceipt, contract: Contract, event_name: str) -> list[dict[str, Any]]:
        """Every ``event_name`` emitted by ``contract`` in ``receipt``, decoded.

        Each item has the same shape as :meth:`get_logs`: ``event``, ``args`` (dict),
        ``block_number``, ``tx_hash`` (0x-hex), ``log_index``.
        """
        decoded = contract.events[event_name]().process_receipt(receipt, errors=DISCARD)
        return [_event_dict(ev) for ev in decoded if ev["address"] == contract.address]

    def get_logs(
        self,
        contract: Contract,
        event_name: str,
        from_block: BlockIdentifier = 0,
        to_block: BlockIdentifier = "latest",
        argument_filters: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Past ``event_name`` logs of ``contract`` in ``[from_block, to_block]`` (oldest first), shaped like
        :meth:`events`, read in pages of at most :attr:`log_block_range` blocks (see :func:`paged_logs`).

        Tags (``"latest"``, ...) are resolved to block numbers once, before the first page. Raises
        :class:`LogsUnavailable` when the provider refuses the logs, :class:`RpcUnavailable` when it does not
        answer."""
        event = contract.events[event_name]

        def fetch(lo: int, hi: int) -> list[Any]:
            return list(event().get_logs(argument_filters=argument_filters, from_block=lo, to_block=hi))

        logs = self._paged(fetch, from_block, to_block, f"{event_name} logs of {contract.address}")
        return [_event_dict(log) for log in logs]

    def get_logs_raw(self, params: FilterParams) -> list[LogReceipt]:
        """``eth_getLogs`` with raw ``params`` (any addresses and topics), undecoded, oldest first; paged like
        :meth:`get_logs` over ``fromBlock`` to ``toBlock`` (defaults: the latest block) unless ``blockHash``
        names one block."""
        if "blockHash" in params:
            try:
                return list(self._rpc(lambda: self.w3.eth.get_logs(params)))
            except Web3RPCError as exc:
                block = HexBytes(params["blockHash"]).to_0x_hex()
                message = f"RPC {self.rpc_url} refused to read the logs of block {block}: {_rpc_error_text(exc)}"
                raise LogsUnavailable(self._redact(message)) from None

        def fetch(lo: int, hi: int) -> list[LogReceipt]:
            return list(self.w3.eth.get_logs({**params, "fromBlock": lo, "toBlock": hi}))

        start, end = params.get("fromBlock", "latest"), params.get("toBlock", "latest")
        address = params.get("address", "any address")
        return self._paged(fetch, start, end, f"logs of {address if isinstance(address, str) else ', '.join(address)}")

    def _paged(
        self, fetch: Callable[[int, int], list[T]], start: BlockIdentifier, end: BlockIdentifier, what: str
    ) -> list[T]:
        """:func:`paged_logs` of ``fetch`` over ``[start, end]`` with this client's range (which it narrows when
        the provider asks for less); provider refusals become :class:`LogsUnavailable`."""
        first, last = self._block_number_of(start), self._block_number_of(end)

        def guarded(lo: int, hi: int) -> list[T]:
            try:
                return self._rpc(lambda: fetch(lo, hi))
            except Web3RPCError as exc:
                answer = _rpc_error_text(exc)
                if says_range_too_large(answer):
                    raise RangeTooLarge(answer, lo, hi) from None
                raise self._logs_unavailable(what, lo, hi, answer) from None

        try:
            logs, size = paged_logs(guarded, first, last, self._log_range)
        except RangeTooLarge as exc:
            raise self._logs_unavailable(what, exc.lo, exc.hi, exc.answer) from None
        self._log_range = min(self._log_range, size)
        return logs

    def _logs_unavailable(self, what: str, lo: int, hi: int, answer: str) -> LogsUnavailable:
        blocks = f"block {lo}" if lo == hi else f"blocks {lo}..{hi}"
        return LogsUnavailable(self._redact(f"RPC {self.rpc_url} refused to read {what} in {blocks}: {answer}"))

    def _block_number_of(self, block: BlockIdentifier) -> int:
        """``block`` as a number: ints as given, ``"earliest"`` 0, ``"latest"`` the head, hex strings parsed,
        other tags (``"safe"``, ``"finalized"``, ``"pending"``) as the node resolves them."""
        if isinstance(block, int):
            return block
        if block == "earliest":
            return 0
        if block == "latest":
            return self.block_number()
        if isinstance(block, str) and block.startswith("0x") and len(block) <= 18:
            return int(block, 16)
        return int(self.get_block(block)["number"])

    def get_block(self, block_identifier: BlockIdentifier = "latest") -> BlockData:
        """A block's header fields (raises ``web3.exceptions.BlockNotFound`` for an unknown block)."""
        return self._rpc(lambda: self.w3.eth.get_block(block_identifier))

    def get_transaction(self, tx_hash: bytes | str) -> TxData:
        """A transaction by hash (raises ``web3.exceptions.TransactionNotFound`` if the node has none)."""
        return self._rpc(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)))

    def get_receipt(self, tx_hash: bytes | str) -> TxReceipt:
        """A mined transaction's receipt (raises ``web3.exceptions.TransactionNotFound`` if not mined)."""
        return self._rpc(lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)))

    def balance(self, address: str) -> int:
        """Balance of ``address`` in wei."""
        return int(self._rpc(lambda: self.w3.eth.get_balance(to_checksum_address(address))))

    def code(self, address: str) -> bytes:
        """The runtime code deployed at ``address`` (empty if none)."""
        return bytes(self._rpc(lambda: self.w3.eth.get_code(to_checksum_address(address))))

    def block_number(self) -> int:
        """The latest block number."""
        return int(self._rpc(lambda: self.w3.eth.block_number))

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self._rpc(lambda: self.w3.eth.get_block("latest"))["timestamp"])

    # --------------------------------------------------- anvil / dev helpers
    def increase_time(self, seconds: int) -> None:
        """Advance the chain clock by ``seconds`` and mine a block (anvil/hardhat only)."""
        self._request("evm_increaseTime", [int(seconds)])
        self.mine()

    def mine(self, n: int = 1) -> None:
        """Mine ``n`` blocks."""
        self._request("anvil_mine", [hex(n)])

    def snapshot(self) -> str:
        """Take an EVM snapshot; returns its id for :meth:`revert`."""
        return str(self._request("evm_snapshot", []))

    def revert(self, snapshot_id: str) -> None:
        """Revert to a snapshot (nonce bookkeeping is reset)."""
        ok = self._request("evm_revert", [snapshot_id])
        with self._lock:
            self._next_nonce = None
            self._inflight.clear()
        if ok is False:
            raise ChainError(f"evm_revert to snapshot {snapshot_id} failed (already used or unknown)")

    def set_balance(self, address: str, wei: int) -> None:
        """Set an address's balance (anvil only)."""
        self._request("anvil_setBalance", [to_checksum_address(address), hex(wei)])

    def trace_transaction(self, tx_hash: bytes | str) -> dict[str, Any]:
        """A mined transaction's execution, step by step (``debug_traceTransaction``'s default tracer, without
        stack, memory or storage): ``{"gas": ..., "structLogs": [{"op", "gas", "gasCost", "depth", ...}]}``.
        Anvil keeps the steps only when started with ``--steps-tracing`` (else ``structLogs`` is empty)."""
        options = {"disableStack": True, "disableMemory": True, "disableStorage": True}
        return dict(self._request("debug_traceTransaction", [HexBytes(tx_hash).to_0x_hex(), options]))


def _rpc_error_text(exc: Web3RPCError) -> str:
    """The provider's own message in a JSON-RPC error answer (else web3's rendering of it), on one line."""
    error = exc.rpc_response.get("error") if isinstance(exc.rpc_response, dict) else None
    text = error.get("message") if isinstance(error, dict) else None
    return " ".join(str(text if text else exc.message).split())


def _event_dict(log: Any) -> dict[str, Any]:
    """A decoded web3 ``EventData`` as a plain dict."""
    return {
        "event": log["event"],
        "args": dict(log["args"]),
        "block_number": int(log["blockNumber"]),
        "tx_hash": HexBytes(log["transactionHash"]).to_0x_hex(),
        "log_index": int(log["logIndex"]),
    }
