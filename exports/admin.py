from django.contrib import admin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "dataset", "can_write", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("can_write",)
    raw_id_fields = ("user", "dataset")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    search_fields = ("name", "prefix", "user__username")
