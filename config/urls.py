from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("annotator.api_urls")),
    path("api/v1/", include("scoring.api_urls")),
    path("api/v1/", include("reviews.api_urls")),
    path("api/v1/", include("exports.api_urls")),
    path("", include("exports.urls")),
    path("", include("scoring.urls")),
    path("", include("reviews.urls_desk")),
    path("", include("reviews.urls_dashboard")),
    path("", include("annotator.urls")),
]
