from django.contrib import admin

from .models import Dataset, ImportJob, Membership, Sample, SampleRevision


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "dataset", "role", "created_at")
    list_filter = ("role",)
    raw_id_fields = ("user", "dataset")


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "external_id", "task_type", "language", "status", "flag_count")
    list_filter = ("status", "language")
    search_fields = ("external_id", "content_hash")
    raw_id_fields = ("dataset", "import_job")
    list_select_related = ("dataset",)
    show_full_result_count = False


@admin.register(SampleRevision)
class SampleRevisionAdmin(admin.ModelAdmin):
    list_display = ("id", "sample", "author", "status", "created_at")
    list_filter = ("status",)
    raw_id_fields = ("sample", "author")


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "original_name", "status", "imported_count", "duplicate_count", "error_count", "created_at")
    list_filter = ("status",)
    raw_id_fields = ("dataset", "created_by")
