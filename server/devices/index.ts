// Enrolled thin-client devices (docs/devices.md): the service and the request middleware.
export { DeviceService, ROOM_DISPLAYS, displayUserOf, deviceView, codeView, secretHash, newEnrolmentCode, normaliseEnrolmentCode, newCredential, type DevicesConfig, type DeviceView, type CredentialCheck, type NewEnrolmentCode, type DeviceChanges } from './device.service.ts';
export { deviceMiddleware, setDeviceCookie, deviceCookieOptions, KIOSK_COOKIE } from './device.middleware.ts';
