"""Pages of the conflict queue and adjudication."""

from django.urls import path

from .views import desk

app_name = "reviews"

urlpatterns = [
    path("d/<slug:slug>/review/", desk.queue, name="queue"),
    path("d/<slug:slug>/review/link/", desk.queue_link, name="queue_link"),
    path("d/<slug:slug>/review/rule/", desk.review_rule, name="review_rule"),
    path("d/<slug:slug>/review/<int:pk>/", desk.adjudicate, name="adjudicate"),
    path("d/<slug:slug>/review/<int:pk>/decide/", desk.decide, name="decide"),
    path("d/<slug:slug>/review/<int:pk>/diff/", desk.answer_diff_view, name="answer_diff"),
]
