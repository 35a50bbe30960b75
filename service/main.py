"""The FastAPI application: partner links, coordinator and auditor pages, the API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from models.settings import get_settings


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="CLSM — moteur de processus",
        description="Étapes des partenaires par lien, historique des dossiers, API.",
        version="0.1.0",
    )

    @app.get("/health", tags=["système"], summary="État du service")
    def health() -> dict[str, str]:
        """Répond « ok » quand le service est prêt."""
        return {"status": "ok"}

    @app.get(
        "/", response_class=HTMLResponse, tags=["pages"], summary="Accueil", include_in_schema=False
    )
    def home() -> str:
        return (
            "<!doctype html><html lang='fr'><meta charset='utf-8'><title>CLSM</title>"
            f"<h1>CLSM — moteur de processus</h1><ul>"
            f"<li><a href='{settings.ui_url}'>Interface Prefect</a></li>"
            "<li><a href='/docs'>API</a></li></ul></html>"
        )

    return app
