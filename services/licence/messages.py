"""Licence records as protobuf messages, for the gRPC answers and the events alike."""

from __future__ import annotations

from parley.licence.v1 import licence_pb2

from services.core.timestamps import timestamp
from services.licence.records import (
    ActivationRecord,
    AppRecord,
    AppSettings,
    AuthorisationRecord,
    LicenceType,
    PoolRecord,
)


def settings_message(settings: AppSettings) -> licence_pb2.AppSettings:
    return licence_pb2.AppSettings(
        auto_record=settings.auto_record,
        record_callback_url=settings.record_callback_url,
        room_status_callback_url=settings.room_status_callback_url,
        media_proxy=settings.media_proxy,
    )


def settings_record(message: licence_pb2.AppSettings) -> AppSettings:
    return AppSettings(
        auto_record=message.auto_record,
        record_callback_url=message.record_callback_url,
        room_status_callback_url=message.room_status_callback_url,
        media_proxy=message.media_proxy,
    )


def app_message(app: AppRecord) -> licence_pb2.App:
    return licence_pb2.App(
        biz_name=app.biz_name,
        app_id=app.app_id,
        workspace_id=app.workspace_id,
        name=app.name,
        public_key=app.public_key,
        settings=settings_message(app.settings),
        created_at=timestamp(app.created_at),
        updated_at=timestamp(app.updated_at),
    )


def licence_type(value: int) -> LicenceType:
    return LicenceType(value)


def pool_message(pool: PoolRecord) -> licence_pb2.LicencePool:
    return licence_pb2.LicencePool(
        biz_name=pool.biz_name,
        model_id=pool.model_id,
        type=licence_pb2.LicenceType.ValueType(pool.licence_type),
        total=pool.total,
        used=pool.used,
    )


def activation_message(activation: ActivationRecord) -> licence_pb2.Activation:
    return licence_pb2.Activation(
        biz_name=activation.biz_name,
        model_id=activation.model_id,
        sn=activation.sn,
        type=licence_pb2.LicenceType.ValueType(activation.licence_type),
        activated_at=timestamp(activation.activated_at),
        newly_activated=activation.newly_activated,
    )


def authorisation_message(authorisation: AuthorisationRecord) -> licence_pb2.Authorisation:
    return licence_pb2.Authorisation(
        biz_name=authorisation.biz_name,
        sn=authorisation.sn,
        open_id=authorisation.open_id,
        status=authorisation.status,
        updated_at=timestamp(authorisation.updated_at),
    )
