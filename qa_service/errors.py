"""One exception hierarchy for every domain error; the HTTP layer maps it to statuses once."""


class QAServiceError(Exception):
    """Base class. `code` is a stable machine-readable identifier."""

    code = "internal_error"
    http_status = 500
    headers: dict[str, str] | None = None  # extra HTTP response headers (e.g. Retry-After)


class InvalidInputError(QAServiceError):
    code = "invalid_input"
    http_status = 422


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


class IndexMismatchError(QAServiceError):
    """The index on disk was built with another model/dimension or is inconsistent."""

    code = "index_mismatch"
    http_status = 503


class ModelLoadError(QAServiceError):
    code = "model_unavailable"
    http_status = 503


class DatabaseUnavailableError(QAServiceError):
    """PostgreSQL (QA_STORE=pgvector) could not be reached or dropped the connection."""

    code = "database_unavailable"
    http_status = 503
