from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView
from rest_framework.routers import DefaultRouter

from moderation import api, dashboard_views, ops_views, views
from moderation.throttling import login_rate_limited

router = DefaultRouter()
router.register("videos", api.VideoViewSet, basename="api-video")
router.register("review-tasks", api.ReviewTaskViewSet, basename="api-review-task")
router.register("reviews", api.ReviewViewSet, basename="api-review")

# The admin's own sign-in form takes the same passwords: it counts against the same limits.
admin.site.login = login_rate_limited(admin.site.login)
handler400 = "moderation.errors.bad_request"
handler404 = "moderation.errors.not_found"

urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("videos/", views.video_list, name="video-list"),
    path("videos/<int:pk>/", views.video_detail, name="video-detail"),
    path("videos/<int:pk>/frames/<int:index>.jpg", views.video_frame, name="video-frame"),
    path("videos/<int:pk>/media", views.video_media, name="video-media"),
    path("videos/<int:pk>/reopen/", views.video_reopen, name="video-reopen"),
    path("videos/<int:pk>/correct/", views.video_correct, name="video-correct"),
    path("queue/", views.review_queue, name="review-queue"),
    path("queue/claim/", views.claim_next, name="claim-next"),
    path("review/<int:task_id>/", views.review, name="review"),
    path("review/<int:task_id>/decide/", views.review_decide, name="review-decide"),
    path("review/<int:task_id>/skip/", views.review_skip, name="review-skip"),
    path("dashboard/", dashboard_views.dashboard_page, name="dashboard"),
    path("dashboard/export/<slug:name>.csv", dashboard_views.dashboard_export, name="dashboard-export"),
    path("accounts/login/", login_rate_limited(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("livez", ops_views.livez, name="livez"),
    path("healthz", ops_views.healthz, name="healthz"),
    path("metrics", ops_views.prometheus_metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-docs"),
]

if settings.DEBUG:
    from django.conf.urls.static import static

    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
