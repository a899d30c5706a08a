"""gRPC handlers of the licence service: messages in, the `Licensing` rules, messages out. The facts
these changes produce are staged by the rules themselves, in the store's unit of work that makes them
true (services/licence/store.py)."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from parley.licence.v1 import licence_pb2, licence_pb2_grpc

from services.licence import messages
from services.licence.licensing import Licensing

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class LicenceServicer(licence_pb2_grpc.LicenceServiceServicer):
    def __init__(self, licensing: Licensing) -> None:
        self._licensing = licensing

    # Call apps

    async def CreateApp(
        self, request: licence_pb2.CreateAppRequest, context: Context
    ) -> licence_pb2.AppWithKey:
        app, private_key = await self._licensing.apps.create_app(
            request.name, messages.settings_record(request.settings)
        )
        message = messages.app_message(app)
        return licence_pb2.AppWithKey(app=message, private_key=private_key)

    async def ListApps(
        self, request: licence_pb2.ListAppsRequest, context: Context
    ) -> licence_pb2.ListAppsResponse:
        return licence_pb2.ListAppsResponse(
            apps=[messages.app_message(app) for app in await self._licensing.apps.list_apps()]
        )

    async def GetApp(self, request: licence_pb2.GetAppRequest, context: Context) -> licence_pb2.App:
        return messages.app_message(await self._licensing.apps.get_app(request.biz_name))

    async def UpdateApp(self, request: licence_pb2.UpdateAppRequest, context: Context) -> licence_pb2.App:
        app = await self._licensing.apps.update_app(
            request.biz_name,
            name=request.name or None,
            settings=messages.settings_record(request.settings) if request.HasField("settings") else None,
        )
        message = messages.app_message(app)
        return message

    async def RotateAppKey(
        self, request: licence_pb2.GetAppRequest, context: Context
    ) -> licence_pb2.AppWithKey:
        app, private_key = await self._licensing.apps.rotate_key(request.biz_name)
        message = messages.app_message(app)
        return licence_pb2.AppWithKey(app=message, private_key=private_key)

    async def RevealAppKey(
        self, request: licence_pb2.GetAppRequest, context: Context
    ) -> licence_pb2.AppWithKey:
        app, private_key = await self._licensing.apps.reveal_key(request.biz_name)
        return licence_pb2.AppWithKey(app=messages.app_message(app), private_key=private_key)

    async def DeleteApp(
        self, request: licence_pb2.GetAppRequest, context: Context
    ) -> licence_pb2.DeleteAppResponse:
        await self._licensing.apps.delete_app(request.biz_name)
        return licence_pb2.DeleteAppResponse()

    # Signatures

    async def IssueSignature(
        self, request: licence_pb2.IssueSignatureRequest, context: Context
    ) -> licence_pb2.Signature:
        signature = await self._licensing.apps.issue_signature(
            request.biz_name, request.uid, request.ttl or "24h"
        )
        return licence_pb2.Signature(signature=signature.signature, expire_time=signature.expire_time_ms)

    async def VerifySignature(
        self, request: licence_pb2.VerifySignatureRequest, context: Context
    ) -> licence_pb2.VerifySignatureResponse:
        verified = await self._licensing.apps.verify_signature(
            request.biz_name, request.uid, request.signature
        )
        return licence_pb2.VerifySignatureResponse(
            app_id=verified.app_id, workspace_id=verified.workspace_id, expire_time=verified.expire_time_ms
        )

    # Device licences

    async def AddLicences(
        self, request: licence_pb2.AddLicencesRequest, context: Context
    ) -> licence_pb2.LicencePool:
        pool = await self._licensing.devices.add_licences(
            request.biz_name, request.model_id, messages.licence_type(request.type), request.count
        )
        return messages.pool_message(pool)

    async def ListLicencePools(
        self, request: licence_pb2.ListLicencePoolsRequest, context: Context
    ) -> licence_pb2.ListLicencePoolsResponse:
        pools = await self._licensing.devices.list_pools(request.biz_name)
        return licence_pb2.ListLicencePoolsResponse(pools=[messages.pool_message(pool) for pool in pools])

    async def ActivateDevice(
        self, request: licence_pb2.ActivateDeviceRequest, context: Context
    ) -> licence_pb2.Activation:
        activation = await self._licensing.devices.activate(
            request.biz_name, request.model_id, request.sn, messages.licence_type(request.type)
        )
        message = messages.activation_message(activation)
        return message

    async def BatchActivateDevices(
        self, request: licence_pb2.BatchActivateDevicesRequest, context: Context
    ) -> licence_pb2.BatchActivateDevicesResponse:
        results = await self._licensing.devices.batch_activate(
            request.biz_name, request.model_id, messages.licence_type(request.type), list(request.sns)
        )
        response = licence_pb2.BatchActivateDevicesResponse()
        for result in results:
            entry = response.results.add(sn=result.sn, code=result.code, msg=result.msg)
            if result.activation is None:
                continue
            entry.activation.CopyFrom(messages.activation_message(result.activation))
        return response

    async def GetActivation(
        self, request: licence_pb2.DeviceRequest, context: Context
    ) -> licence_pb2.Activation:
        return messages.activation_message(await self._licensing.devices.get_activation(request.sn))

    # Registration

    async def IssueSnTicket(
        self, request: licence_pb2.IssueSnTicketRequest, context: Context
    ) -> licence_pb2.SnTicket:
        ticket = await self._licensing.devices.issue_sn_ticket(request.biz_name, request.sn)
        return licence_pb2.SnTicket(sn_ticket=ticket.token, expires_at=messages.timestamp(ticket.expires_at))

    async def RegisterDevice(
        self, request: licence_pb2.RegisterDeviceRequest, context: Context
    ) -> licence_pb2.DeviceRegistration:
        registration = await self._licensing.devices.register_device(request.sn, request.sn_ticket)
        return licence_pb2.DeviceRegistration(
            biz_name=registration.biz_name,
            sn=registration.sn,
            device_secret=registration.device_secret,
            registered_at=messages.timestamp(registration.registered_at),
        )

    async def IsRegistered(
        self, request: licence_pb2.DeviceRequest, context: Context
    ) -> licence_pb2.IsRegisteredResponse:
        return licence_pb2.IsRegisteredResponse(
            registered=await self._licensing.devices.is_registered(request.sn)
        )

    async def AuthenticateDevice(
        self, request: licence_pb2.AuthenticateDeviceRequest, context: Context
    ) -> licence_pb2.Device:
        device = await self._licensing.devices.authenticate_device(request.sn, request.device_secret)
        return licence_pb2.Device(
            biz_name=device.biz_name,
            model_id=device.model_id,
            sn=device.sn,
            type=licence_pb2.LicenceType.ValueType(device.licence_type),
        )

    # Authorisation

    async def SetAuthorisation(
        self, request: licence_pb2.SetAuthorisationRequest, context: Context
    ) -> licence_pb2.Authorisation:
        authorisation = await self._licensing.authorisations.set_authorisation(
            request.biz_name, request.sn, request.open_id, request.authorised
        )
        message = messages.authorisation_message(authorisation)
        return message

    async def ListAuthorisedUsers(
        self, request: licence_pb2.ListAuthorisedUsersRequest, context: Context
    ) -> licence_pb2.ListAuthorisedUsersResponse:
        users, total = await self._licensing.authorisations.list_authorised_users(
            request.sn, request.offset, request.limit or 10
        )
        return licence_pb2.ListAuthorisedUsersResponse(
            users=[messages.authorisation_message(user) for user in users], total=total
        )

    async def ListAuthorisedDevices(
        self, request: licence_pb2.ListAuthorisedDevicesRequest, context: Context
    ) -> licence_pb2.ListAuthorisedDevicesResponse:
        devices = await self._licensing.authorisations.list_authorised_devices(
            request.biz_name, request.open_id
        )
        return licence_pb2.ListAuthorisedDevicesResponse(
            devices=[messages.authorisation_message(device) for device in devices]
        )

    # Calls

    async def CheckDeviceCall(
        self, request: licence_pb2.CheckDeviceCallRequest, context: Context
    ) -> licence_pb2.CheckDeviceCallResponse:
        device = await self._licensing.authorisations.check_device_call(
            request.sn, request.open_id, request.model_id
        )
        return licence_pb2.CheckDeviceCallResponse(
            biz_name=device.biz_name, type=licence_pb2.LicenceType.ValueType(device.licence_type)
        )
