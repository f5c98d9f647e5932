"""Exports and the pull API under /api/v1/."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
