"""A job's figure and table crops: `GET /jobs/{id}/images/{name}` serves one, and `format=zip` on the result
route bundles them with the result (see app/api/bundle.py). Scoped like every job route: a job of another API
key is a 404."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.bundle import zip_response
from app.api.deps import JobsDep, SettingsDep
from app.api.job_views import OwnerDep, owned_job
from app.api.open_file import serve_file
from app.api.upload import uploads_dir
from app.errors import NotFound
from app.jobs import files
from app.settings import Settings
from app.storage.images import MEDIA_TYPES

router = APIRouter(tags=["jobs"])

# Exactly the names figures.py writes: nothing else (no dot files, no path separators) can be asked for.
IMAGE_NAME = re.compile(r"^p\d{1,6}-(?:fig|chart|table|formula)\d{1,4}\.(?:png|jpg)$")


@router.get(
    "/jobs/{job_id}/images/{name}",
    summary="One figure or table crop of a job",
    description="The names are those the result links (`images/<name>`). 404 for another key's job or an "
    "unknown name.",
    response_class=Response,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}},
)
async def get_image(job_id: str, name: str, jobs: JobsDep, owner: OwnerDep, settings: SettingsDep) -> Response:
    job = await owned_job(job_id, jobs, owner)
    if not IMAGE_NAME.match(name):
        raise NotFound(f"job {job.id} has no image {name!r}")
    path = files.job_images_dir(settings, job.id) / name
    # Opened before anything is sent: a DELETE meanwhile gives a whole image or a 404 (app/api/open_file.py).
    return await serve_file(path, media_type=MEDIA_TYPES[path.suffix], what=f"image {name!r} of job {job.id}",
                            headers={"Cache-Control": "private, max-age=3600"})


async def job_bundle(settings: Settings, job_id: str) -> Response:
    """The zip of a succeeded job's result (the caller has checked the job's owner and status); 404 when the job
    is deleted before or while the archive is written."""
    try:
        return await zip_response(files.job_dir(settings, job_id), filename=f"{job_id}.zip",
                                  scratch_dir=uploads_dir(settings))
    except FileNotFoundError:
        raise NotFound(f"no job {job_id}") from None
