"""One exception hierarchy for every domain error; the HTTP layer maps it to statuses once."""


class QAServiceError(Exception):
    """Base class. `code` is a stable machine-readable identifier."""

    code = "internal_error"
    http_status = 500
    headers: dict[str, str] | None = None  # extra HTTP response headers (e.g. Retry-After)
    # What a client is told of a server-side (5xx) error: the message itself goes to the server log
    # only, as it may name files, hosts or internals.
    public_message = "Internal server error; see the server log."

    def client_message(self) -> str:
        """The message for the response body: the whole message for client errors (4xx: they say what
        to fix), `public_message` for server errors."""
        return str(self) if self.http_status < 500 else self.public_message


class InvalidInputError(QAServiceError):
    code = "invalid_input"
    http_status = 422


class AuthenticationError(QAServiceError):
    """No API key, or one that is unknown or revoked (401 with `WWW-Authenticate: Bearer`)."""

    code = "unauthorized"
    http_status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"WWW-Authenticate": "Bearer"}


class ForbiddenError(QAServiceError):
    """A valid key that may not do this (or a disabled capability)."""

    code = "forbidden"
    http_status = 403


class UnsupportedFileTypeError(QAServiceError):
    code = "unsupported_file_type"
    http_status = 415


class DocumentParseError(QAServiceError):
    code = "document_parse_error"
    http_status = 422


class NotFoundError(QAServiceError):
    code = "not_found"
    http_status = 404


class DocumentNotFoundError(NotFoundError):
    code = "document_not_found"


class PayloadTooLargeError(QAServiceError):
    code = "payload_too_large"
    http_status = 413


class IndexNotFoundError(QAServiceError):
    code = "index_not_found"
    http_status = 503
    public_message = "The index is not available yet (not built, or still loading); see the server log."


class IndexMismatchError(QAServiceError):
    """The index on disk was built with another model/dimension or is inconsistent."""

    code = "index_mismatch"
    http_status = 503
    public_message = (
        "The index on the server cannot be used (another model or version, or inconsistent); see the server log."
    )


class ModelLoadError(QAServiceError):
    code = "model_unavailable"
    http_status = 503
    public_message = "The embedding model could not be loaded; see the server log."


class DatabaseUnavailableError(QAServiceError):
    """PostgreSQL (QA_STORE=pgvector) could not be reached or dropped the connection."""

    code = "database_unavailable"
    http_status = 503
    public_message = "The database is unavailable; try again shortly."


class ConflictError(QAServiceError):
    """The request conflicts with the current state (a name taken, a protected resource)."""

    code = "conflict"
    http_status = 409


class CollectionNotFoundError(NotFoundError):
    code = "collection_not_found"


class CollectionExistsError(ConflictError):
    code = "collection_exists"


class CollectionProtectedError(ConflictError):
    """The `default` collection cannot be renamed or deleted."""

    code = "collection_protected"
