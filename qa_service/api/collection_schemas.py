"""Request and response models of the collection routes."""

from __future__ import annotations

from pydantic import BaseModel, Field

from qa_service.store.collections import NAME_RULE

CollectionName = Field(..., description=f"Collection name: {NAME_RULE}.", examples=["hr"])


class CollectionCreate(BaseModel):
    name: str = CollectionName
    public: bool = Field(False, description="Whether anonymous askers (no key, the public widget) may ask it.")


class CollectionUpdate(BaseModel):
    name: str | None = Field(None, description=f"New name ({NAME_RULE}); `default` cannot be renamed.")
    public: bool | None = Field(None, description="Make the collection public or private.")


class CollectionInfo(BaseModel):
    id: str = Field(..., description="Stable id (never reused; `default` for the default collection).")
    name: str
    public: bool
    created_at: float = Field(..., description="Unix time of creation.")
    documents: int = Field(..., description="Number of documents.")
    sentences: int = Field(..., description="Number of indexed sentences.")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]
