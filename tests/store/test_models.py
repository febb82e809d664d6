"""The store's mapping: rows are linked by their own foreign keys, relationships are for reading."""

from __future__ import annotations

from store.models import Base


def test_relationships_are_read_only_but_an_agents_memberships():
    # A flush works out every relationship it could write for each row it writes: read-only ones
    # cost it nothing. Code that makes or moves a row sets its foreign key column instead.
    writable = {
        f"{mapper.class_.__name__}.{relationship.key}"
        for mapper in Base.registry.mappers
        for relationship in mapper.relationships
        if not relationship.viewonly
    }
    assert writable == {"Agent.memberships"}
