// PLACEHOLDER (replaced by the area's helper).
import type { MobilityContext } from './context.js';

export class VehicleService {
  constructor(private readonly context: MobilityContext) {}
}
