"""App factory for a service process started by the tests (test kinds registered)."""

from __future__ import annotations

from fastapi import FastAPI

from tests.support.service_kit import register_kinds


def create_test_app() -> FastAPI:
    from service.main import create_app

    register_kinds()
    return create_app()
