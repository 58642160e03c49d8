import argon2 from 'argon2';

export interface PasswordPolicy {
  memoryKiB: number;
  timeCost: number;
  parallelism: number;
}

/** argon2id hashing; verification takes the same time whether or not the user exists. */
export class Passwords {
  private dummy: Promise<string>;

  constructor(private readonly policy: PasswordPolicy) {
    this.dummy = this.hash('not-a-real-password-' + Math.random());
  }

  hash(plain: string): Promise<string> {
    return argon2.hash(plain, {
      type: argon2.argon2id,
      memoryCost: this.policy.memoryKiB,
      timeCost: this.policy.timeCost,
      parallelism: this.policy.parallelism,
    });
  }

  async verify(hash: string | null, plain: string): Promise<boolean> {
    try {
      const ok = await argon2.verify(hash || (await this.dummy), plain);
      return ok && !!hash;
    } catch {
      return false;
    }
  }
}
