// PLACEHOLDER (replaced by the area's helper).
import type { MobilityContext } from './context.js';

export class SignalPriorityService {
  constructor(private readonly context: MobilityContext) {}
}
