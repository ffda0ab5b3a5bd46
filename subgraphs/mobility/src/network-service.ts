// PLACEHOLDER (replaced by the area's helper).
import type { MobilityContext } from './context.js';

export class NetworkService {
  constructor(private readonly context: MobilityContext) {}
}
