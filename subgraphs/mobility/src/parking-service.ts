// PLACEHOLDER (replaced by the area's helper).
import type { MobilityContext } from './context.js';

export class ParkingService {
  constructor(private readonly context: MobilityContext) {}
}
