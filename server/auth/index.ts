export { Passwords, type PasswordPolicy } from './passwords.ts';
export { LoginThrottle, type ThrottleOptions, type LockoutStatus, type BlockedAddress } from './throttle.ts';
export { IdentityService, type NewUser } from './identity.service.ts';
export { HttpAuth, requireRole, actorOf, type HttpAuthOptions, type Login } from './http.ts';
