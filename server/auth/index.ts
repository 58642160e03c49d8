export { Passwords, type PasswordPolicy } from './passwords.ts';
export { LoginThrottle, type ThrottleOptions } from './throttle.ts';
export { IdentityService, type NewUser } from './identity.service.ts';
export { HttpAuth, requireRole, actorOf, type HttpAuthOptions } from './http.ts';
